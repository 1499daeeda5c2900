"""``open_p2p``: the host, gossip, request/response and peer management in one nursery."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import RetryConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from ._config import P2PConfig
from ._errors import ConfigError
from ._gossip import RPC_DROPS, Gossip, PublishResult, Subscription, Validator
from ._peers import PEER_EXCHANGE_PROTOCOL, PeerEvent, PeerManager, parse_peer_multiaddr
from ._reqresp import Handler, RequestResponse

log = logging.getLogger("poi.p2p")

PEER_EXCHANGE_TIMEOUT_S = 5.0
MESH_REPAIR_TICKS = 2
"""Every this many heartbeats, re-GRAFT mesh peers (see Gossip.repair_mesh)."""
SHUTDOWN_GRACE_S = 1.5
"""Longest a shutdown waits for connections to close politely."""
POOLED_STREAM_IDLE_S = 20.0
"""Pooled request streams idle this long are closed (well before the server's idle cut-off)."""


class P2P:
    """A running libp2p node. Made by :func:`open_p2p`; every method is trio-async-safe."""

    def __init__(self, host: Any, config: P2PConfig, peers: PeerManager, gossip: Gossip,
                 rr: RequestResponse, nursery: trio.Nursery) -> None:
        self._host = host
        self.config = config
        self._peers = peers
        self._gossip = gossip
        self._rr = rr
        self._nursery = nursery
        self.peer_id: str = host.get_id().to_base58()

    # --- identity and addresses -----------------------------------------------------------
    @property
    def listen_addrs(self) -> list[str]:
        """The bound listen addresses (actual ports), each ending in ``/p2p/<peer_id>``."""
        return [f"{addr}/p2p/{self.peer_id}" for addr in self._host.get_transport_addrs()]

    # --- gossip ---------------------------------------------------------------------------
    async def subscribe(self, topic: str, validator: Validator) -> Subscription:
        """Join ``topic``; every message from a peer is judged by ``validator`` first.

        Returns a Subscription with two bounded receive channels: ``messages`` (ACCEPTed,
        forwarded) and ``ignored`` (IGNOREd, not forwarded). A full channel makes validation
        wait (back-pressure), it never drops. Our own publishes are not delivered to us.
        """
        return await self._gossip.subscribe(topic, validator, self._nursery)

    async def unsubscribe(self, topic: str) -> None:
        await self._gossip.unsubscribe(topic)

    async def publish(self, topic: str, data: bytes) -> PublishResult:
        """Publish ``data`` on ``topic`` (subscribed or not).

        Waits while any peer's outbound queue is nearly full (py-libp2p would drop). Raises
        MessageTooLarge over ``config.max_gossip_bytes``. Publishing bytes already seen on the
        topic (within ``seen_ttl_s``) sends nothing and returns ``duplicate=True``.
        """
        return await self._gossip.publish(topic, data)

    def topic_peers(self, topic: str) -> list[str]:
        """Connected peers subscribed to ``topic`` (who would hear a publish now)."""
        return [p.to_base58() for p in self._gossip.pubsub.peer_topics.get(topic, ())]

    def mesh_peers(self, topic: str) -> list[str]:
        """Our gossipsub mesh for ``topic``: the peers full messages are pushed to."""
        return [p.to_base58() for p in self._gossip.router.mesh.get(topic, ())]

    # --- request/response -----------------------------------------------------------------
    def set_handler(self, protocol_id: str, handler: Handler) -> None:
        """Serve ``protocol_id``: ``async handler(peer_id, request) -> response`` (dicts)."""
        self._rr.set_handler(protocol_id, handler)

    async def request(self, peer_id: str, protocol_id: str, request: dict[str, Any], *,
                      timeout: float) -> dict[str, Any]:
        """Ask ``peer_id`` (connecting to a known address if need be); see RequestResponse."""
        return await self._rr.request(peer_id, protocol_id, request, timeout=timeout)

    # --- peers ----------------------------------------------------------------------------
    def open_peer_events(self, buffer: int = 64) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A new channel of CONNECTED/DISCONNECTED events (starts with the peers connected now).

        Read it steadily or close it: a full channel holds up event dispatch for every reader.
        """
        return self._peers.open_events(buffer)

    def connected_peers(self) -> list[str]:
        return [peer.to_base58() for peer in self._peers.connected()]

    async def connect(self, multiaddr: str) -> str:
        """Dial ``/ip4/../tcp/../p2p/<id>`` once (no reconnects); return the peer ID."""
        peer, addr = parse_peer_multiaddr(multiaddr)
        await self._peers.dial(peer, addr)
        return peer.to_base58()

    async def disconnect(self, peer_id: str) -> None:
        await self._peers.close_peer(ID.from_base58(peer_id))

    def report(self, peer_id: str, reason: str) -> bool:
        """Count a misbehaviour seen outside gossip (e.g. a sync reply that fails its CID).

        Offences share one window with gossip REJECTs; True when this one banned the peer.
        """
        return self._peers.report(ID.from_base58(peer_id), reason)

    def ban(self, peer_id: str, seconds: float, reason: str) -> None:
        self._peers.ban(ID.from_base58(peer_id), seconds, reason)

    def is_banned(self, peer_id: str) -> bool:
        return self._peers.is_banned(ID.from_base58(peer_id))

    def stats(self) -> dict[str, int]:
        """Counters for metrics: gossip, request/response and peer management."""
        out: dict[str, int] = {"peers": len(self._peers.connected()),
                               "gossip_rpc_drops_messages": RPC_DROPS.messages,
                               "gossip_rpc_drops_control": RPC_DROPS.control}
        for prefix, source in (("gossip", self._gossip.stats), ("rr", self._rr.stats),
                               ("peers", self._peers.stats)):
            out.update({f"{prefix}_{key}": value for key, value in source.items()})
        return out

    # --- background work ------------------------------------------------------------------
    async def _upkeep(self) -> None:
        ticks = 0
        while True:
            await trio.sleep(self.config.heartbeat_s)
            ticks += 1
            self._gossip.heartbeat()
            self._peers.sweep_bans()
            if ticks % MESH_REPAIR_TICKS == 0:
                await self._gossip.repair_mesh()
            if ticks % 5 == 0:
                await self._rr.close_idle(POOLED_STREAM_IDLE_S)

    async def _serve_peer_exchange(self, peer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return self._peers.exchange_response(ID.from_base58(peer_id))

    async def _exchange_peers(self) -> None:
        """While below ``target_peers``: ask a random peer for its peers and dial some."""
        await trio.sleep(min(1.0, self.config.peer_exchange_interval_s))
        while True:
            connected = self._peers.connected()
            wanted = self.config.target_peers - len(connected)
            if connected and wanted > 0:
                source = random.choice(connected)
                try:
                    reply = await self._rr.request(source.to_base58(), PEER_EXCHANGE_PROTOCOL,
                                                   {}, timeout=PEER_EXCHANGE_TIMEOUT_S)
                except Exception as exc:  # RequestError, or anything odd in the reply
                    log.debug("peer exchange with %s failed: %r", source, exc)
                else:
                    found = list(self._peers.candidates(reply))[:wanted]
                    async with trio.open_nursery() as nursery:
                        for peer, addr in found:
                            nursery.start_soon(self._try_dial, peer, addr)
            await trio.sleep(self.config.peer_exchange_interval_s)

    async def _try_dial(self, peer: ID, addr: Multiaddr) -> None:
        try:
            await self._peers.dial(peer, addr)
            log.info("connected to %s found by peer exchange", peer)
        except Exception as exc:
            log.debug("dial %s at %s (peer exchange) failed: %r", peer, addr, exc)


def build_host(config: P2PConfig) -> tuple[Any, list[Multiaddr]]:
    """A py-libp2p host: identity = the node key, TCP, Noise only, Yamux only."""
    private = Ed25519PrivateKey.from_bytes(config.key.seed)
    key_pair = KeyPair(private, private.get_public_key())
    if ID.from_pubkey(key_pair.public_key).to_base58() != config.key.peer_id:
        raise ConfigError("libp2p derived a different peer ID from the node key")
    listen = []
    for text in config.listen:
        try:
            addr = Multiaddr(text)
        except Exception as exc:
            raise ConfigError(f"listen address {text!r} is not a multiaddr: {exc}") from None
        if "tcp" not in [p.name for p in addr.protocols()]:
            raise ConfigError(f"listen address {text!r} is not TCP")
        listen.append(addr)
    host = new_host(
        key_pair=key_pair,
        # Only Noise: py-libp2p's default list also offers TLS, SECIO and *plaintext*.
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(
            key_pair, noise_privkey=new_x25519_key_pair().private_key)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=listen,
    )
    network = host.get_network()
    # Our loops retry with their own backoff; the swarm's 3 silent retries only add delay.
    network.retry_config = RetryConfig(max_retries=0)
    # The swarm's auto-connector dials every peerstore peer while under 50 connections, banned
    # ones included; connections are this layer's decision (bootstrap loop, peer exchange).
    network.auto_connector.maybe_connect = _no_auto_connect
    return host, listen


async def _no_auto_connect() -> None:
    return None


@asynccontextmanager
async def open_p2p(config: P2PConfig) -> AsyncIterator[P2P]:
    """Start the p2p layer; it runs until the block exits or its scope is cancelled.

    ``async with open_p2p(config) as p2p:`` listens, starts gossipsub, keeps bootstrap peers
    connected and runs peer exchange, all in a nursery owned by this context; leaving the
    block (or cancelling an enclosing scope) stops every task and closes every connection.
    """
    host, listen = build_host(config)
    peers = PeerManager(host, config)
    gossip = Gossip(host, config, peers)
    rr = RequestResponse(host, config, peers)
    try:
        async with host.run(listen_addrs=listen), background_trio_service(gossip.pubsub), \
                    background_trio_service(gossip.router):
            await gossip.pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                p2p = P2P(host, config, peers, gossip, rr, nursery)
                nursery.start_soon(peers.dispatch)
                nursery.start_soon(p2p._upkeep)
                if config.peer_exchange:
                    rr.set_handler(PEER_EXCHANGE_PROTOCOL, p2p._serve_peer_exchange)
                    nursery.start_soon(p2p._exchange_peers)
                for peer, addr in peers.bootstrap.items():
                    nursery.start_soon(peers.keep_connected, peer, addr)
                try:
                    yield p2p
                finally:
                    nursery.cancel_scope.cancel()
                    await _close_connections(host)
    finally:
        gossip.pubsub.seen_messages.stop()


async def _close_connections(host: Any) -> None:
    """Close every connection now, concurrently, even from a cancelled scope.

    Cancelling the owner's scope also cancels py-libp2p's own tasks, whose cleanup is not
    shielded: a SwarmConn marks itself closed, then its ``muxed_conn.close()`` is cancelled at
    the first await, and later ``close()`` calls return early. The socket stays open and a peer
    in the same process never sees the disconnect. So close the muxed (Yamux) connections
    directly, shielded: each sends GO_AWAY and closes the secured socket.
    """
    network = host.get_network()
    with trio.CancelScope(deadline=trio.current_time() + SHUTDOWN_GRACE_S, shield=True):
        async with trio.open_nursery() as nursery:
            for conns in list(network.connections.values()):
                for conn in list(conns):
                    nursery.start_soon(_quietly, conn.muxed_conn.close)


async def _quietly(close: Any) -> None:
    try:
        await close()
    except Exception as exc:
        log.debug("while closing: %r", exc)


def quiet_libp2p_logging(level: int = logging.CRITICAL) -> None:
    """Raise py-libp2p's log threshold: it logs expected events (a peer without a protocol, a
    peer that hung up) at ERROR with multi-line dumps. This layer's own logs ("poi.p2p.*") say
    what matters (rejections, bans, stalled peers)."""
    logging.getLogger("libp2p").setLevel(level)
