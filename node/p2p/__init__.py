"""poi's libp2p layer (DESIGN §4): Noise-only TCP transport, gossip, request/response, peers.

Everything runs in one trio nursery owned by the caller; leaving the block or cancelling an
enclosing scope stops every task and closes every connection (measured: well under a second)::

    from node.p2p import ACCEPT, Ignore, P2PConfig, Reject, Verdict, open_p2p

    async def check_commit(peer_id: str, data: bytes) -> Verdict:
        try:
            commit = Commit.decode(data)          # cheap checks first (DESIGN §4)
        except ProtocolError as exc:
            return Reject(str(exc))               # invalid: dropped, counted against peer_id
        if not store.has_all(commit.parents):
            return Ignore("parents missing")      # not forwarded; handed to sub.ignored
        return ACCEPT                             # delivered on sub.messages and forwarded

    async def serve_objects(peer_id: str, request: dict) -> dict:
        return {"objects": [store.get_bytes(cid) for cid in request["cids"]]}

    config = P2PConfig(key=signing_key, listen=("/ip4/0.0.0.0/tcp/4001",),
                       bootstrap=("/ip4/10.0.0.2/tcp/4001/p2p/12D3KooW...",))
    async with open_p2p(config) as p2p, trio.open_nursery() as nursery:
        p2p.set_handler("/poi/sync/1", serve_objects)
        sub = await p2p.subscribe(f"poi/{target}/commits/1", check_commit)
        nursery.start_soon(apply_messages, sub.messages)   # GossipMessage(topic, data, ...)
        nursery.start_soon(hold_and_fetch, sub.ignored)     # fetch parents, then apply
        nursery.start_soon(sync_on_connect, p2p.open_peer_events())
        await p2p.publish(f"poi/{target}/commits/1", commit_bytes)
        reply = await p2p.request(peer_id, "/poi/sync/1", {"cids": [...]}, timeout=10)

API (``P2P``, made by ``open_p2p(config: P2PConfig)``, an async context manager)
------------------------------------------------------------------------------
identity      ``peer_id: str`` (= ``config.key.peer_id``), ``listen_addrs: list[str]`` (bound
              ports, each ending ``/p2p/<peer_id>``)
gossip        ``await subscribe(topic, validator) -> Subscription`` (``.messages``,
              ``.ignored``: bounded receive channels of ``GossipMessage``);
              ``await unsubscribe(topic)``; ``await publish(topic, data) -> PublishResult``
              (``msg_id``, ``duplicate``, ``subscribers``); ``topic_peers(topic)``,
              ``mesh_peers(topic)``; ``message_id(topic, data)``
validators    ``async (peer_id: str, data: bytes) -> Verdict`` with ``Verdict = Accept |
              Reject(reason) | Ignore(reason)`` and ``ACCEPT = Accept()``
requests      ``set_handler(protocol_id, async (peer_id, request: dict) -> dict)``;
              ``await request(peer_id, protocol_id, request: dict, *, timeout) -> dict``
peers         ``open_peer_events(buffer=64)`` -> channel of ``PeerEvent(kind, peer_id)``
              (CONNECTED / DISCONNECTED; starts with the peers connected now);
              ``connected_peers()``; ``await connect(multiaddr) -> peer_id``;
              ``await disconnect(peer_id)``; ``report(peer_id, reason) -> banned?``;
              ``ban(peer_id, seconds, reason)``; ``is_banned(peer_id)``
metrics       ``stats() -> dict[str, int]`` (gossip_*, rr_*, peers_* counters;
              ``gossip_rpc_drops_*`` counts py-libp2p's silent outbound drops, process-wide)
errors        ``P2PError`` > ``ConfigError``, ``MessageTooLarge``, ``FrameError`` >
              ``FrameTooLarge``, ``RequestError`` > ``RequestTimeout``, ``PeerUnreachable``,
              ``ProtocolNotSupported``, ``RemoteError`` (``remote_type``), ``StreamBroken``

Gossip semantics
----------------
* Message ID = sha256(topic + NUL + data): the same bytes on one topic are one message network-
  wide (whoever publishes them); on two topics, two messages.
* The validator runs on every message from a peer before it is forwarded. ACCEPT delivers it on
  ``messages`` and forwards it. REJECT drops it, logs the reason and counts an offence against
  the *forwarding* peer: ``reject_threshold`` offences within ``reject_window_s`` (gossip
  rejects, bad request frames, and ``report`` calls share the window) disconnect the peer and
  refuse it for ``ban_s``. IGNORE does not forward and puts the message on ``ignored``: hold it,
  fetch what is missing by request, then apply it (gossip is for announcements, sync for
  completeness). A validator that raises or takes over ``validator_timeout_s`` counts as IGNORE
  (our bug or our slowness is not the peer's offence).
* Concurrent copies of one message from several peers are judged once. An IGNOREd message is
  forgotten after 10 s, so a copy arriving later is judged again (and may be ACCEPTed now).
* Delivery channels are bounded (``delivery_buffer``): a full channel makes validation wait
  (back-pressure into py-libp2p, up to ``max_concurrent_validators`` waiting), it never drops.
* ``publish`` does not run the local validator and does not deliver to the local subscription:
  the node validated what it signs and already has it. Publishing bytes seen on the topic within
  ``seen_ttl_s`` returns ``duplicate=True`` and sends nothing. Over ``max_gossip_bytes``
  (1 MiB - 2 KiB) raises MessageTooLarge: announce a CID and serve the object by request.
* ``publish`` waits while any peer's outbound queue holds ``publish_queue_high_water`` RPCs;
  a peer that stays full for ``publish_stall_s`` is no longer waited for (it will sync).
  Relays cannot wait, so every outbound queue holds ``gossip_queue_capacity`` (128) RPCs.

Request/response semantics
--------------------------
Frames are uvarint length + canonical MessagePack (``protocol.encoding``'s rules; caps sized
for frames: ``max_frame_bytes`` = 32 MiB, byte strings up to a whole blob). A request too large
to send raises FrameTooLarge before anything is sent; a peer's frame over the cap is answered
with an error frame where possible and the stream is reset. Handler exceptions come back as
RemoteError (type and message), never as a hung stream. Requests time out with RequestTimeout
(the stream is reset). Up to ``max_concurrent_requests`` handlers run at once; idle streams are
pooled per (peer, protocol) and reused. A request to a peer we are not connected to dials its
known addresses first. Requests are not retried except on a pooled stream that turned out dead
before the request was read, so handlers should be idempotent (sync reads are).

Connections
-----------
Bootstrap peers are kept connected for the node's life by our own loop (backoff 0.25 s -> 5 s
with jitter): one that is down at start, or restarts later, is reconnected. Peer exchange
(``/poi/px/1``, on by default): while below ``target_peers`` connections, every
``peer_exchange_interval_s`` ask a random peer for up to 32 of its connected peers' addresses
and dial some. More than ``max_peers`` connections: new non-bootstrap peers are closed.

Discovery: peer exchange over our own protocol works offline and on loopback with no extra
moving parts, and suits a network of tens to hundreds of nodes that share bootstrap nodes. The
notes measured Kademlia (``KadDHT``) working on six loopback nodes but with duplicate results
and noisy ERROR logs, and mDNS filling only the peerstore from a zeroconf thread; neither is
needed for peer discovery here. A deployment across the internet should still run several
well-known bootstrap nodes per region, and add the DHT (random walks) if the network grows
past what peer exchange from bootstrap neighbourhoods reaches.

Tuning (py-libp2p 0.8.1 defaults that lose messages or time, and what is set instead)
----------------------------------------------------------------------------------
* Noise only, Yamux only (the default also accepts plaintext, TLS and SECIO).
* Gossipsub v1.1 only: v1.2's IDONTWANT is sent to every mesh peer for every message; it
  doubled the RPCs and the CPU per message (5 nodes: 31 -> 15 ms CPU per message summed over
  the nodes; 29 -> 98 messages/s through the network).
* Spam protection off (10 msgs/s per peer and topic, own publishes included, dropped 490 of a
  500 burst); adaptive gossip off (rewrote a 1 s heartbeat to 30 s); heartbeat 1 s (default
  120 s); ``recent_message_deliveries`` cleared every heartbeat (never trimmed otherwise).
* py-libp2p's subscription channel (32) raised to 4096 and only drained: delivery happens in the
  validator, with back-pressure; its validation timeout (5 s, which would turn a wait for room
  into a cached rejection) is disabled: ours bounds only the application's validator.
* Message cache keyed by the message ID: py-libp2p keys it by from+seqno whatever the ID
  function, so IHAVE advertised IDs no seen-cache recognised and every gossiped message was
  fetched again.
* Outbound queue capacity 128 instead of 32 (not configurable in py-libp2p; set as each queue is
  registered): a 500-message burst over 20 nodes had relays drop 35 message RPCs with 32, none
  with 128 (mesh redundancy still delivered everything in both runs).
* Mesh repair: every 2 heartbeats each node re-sends GRAFT to its mesh peers. py-libp2p adds a
  peer to its mesh and then sends GRAFT, which is silently lost when the peer's outbound queue
  is not registered yet; the two ends then disagree (seen in 2 of 3 10-node runs; one node got
  20 of 300 messages). With the repair: no disagreement in 4 of 4 runs.

py-libp2p behaviours worked around
----------------------------------
* ``host.connect`` waits a fixed 250 ms (happy-eyeballs head start) and puts a peer whose dial
  failed in a 60 s negative cache: dials use ``swarm.dial_addr`` (~10 ms on loopback) and the
  swarm's own 3 retries are off (our loops retry).
* The swarm's auto-connector dials every peerstore peer while under 50 connections, banned ones
  included: disabled; connections are decided here.
* Cancelling py-libp2p's tasks leaves connections half-closed (a SwarmConn marks itself closed,
  then its close is cancelled; the socket stays open and same-process peers never notice):
  shutdown closes the Yamux connections itself, shielded, concurrently.
* A rejected or ignored message is cached as invalid for 5 minutes by py-libp2p: a later publish
  of the same bytes by us would vanish, so ``publish`` clears that entry first.
* ``libp2p.request_response`` gives up after 100 partial reads (a 16 MiB response failed): own
  framing.

Not done here: peer scoring (py-libp2p's ``ScoreParams``; our offence window is the defence),
read-side back-pressure (py-libp2p spawns a task per received message before validation, so a
node whose application stalls accumulates tasks, not drops), IPv6/QUIC/WebSocket listen
addresses, NAT traversal.
"""

from ._config import MAX_GOSSIP_BYTES, P2PConfig
from ._errors import (
    ConfigError,
    FrameError,
    FrameTooLarge,
    MessageTooLarge,
    P2PError,
    PeerUnreachable,
    ProtocolNotSupported,
    RemoteError,
    RequestError,
    RequestTimeout,
    StreamBroken,
)
from ._gossip import (
    ACCEPT,
    Accept,
    GossipMessage,
    Ignore,
    PublishResult,
    Reject,
    Subscription,
    Validator,
    Verdict,
    message_id,
)
from ._node import P2P, open_p2p, quiet_libp2p_logging
from ._peers import PeerEvent, PeerEventKind
from ._reqresp import Handler

__all__ = [
    "ACCEPT",
    "MAX_GOSSIP_BYTES",
    "P2P",
    "Accept",
    "ConfigError",
    "FrameError",
    "FrameTooLarge",
    "GossipMessage",
    "Handler",
    "Ignore",
    "MessageTooLarge",
    "P2PConfig",
    "P2PError",
    "PeerEvent",
    "PeerEventKind",
    "PeerUnreachable",
    "ProtocolNotSupported",
    "PublishResult",
    "Reject",
    "RemoteError",
    "RequestError",
    "RequestTimeout",
    "StreamBroken",
    "Subscription",
    "Validator",
    "Verdict",
    "message_id",
    "open_p2p",
    "quiet_libp2p_logging",
]
