"""Gossipsub, tuned so bursts are not dropped, with a three-way validator (DESIGN §4).

How a message travels through py-libp2p 0.8.1 (``Pubsub.push_msg``), and where this module hooks
in::

    seen? -> origin signature -> topic validator -> mark seen -> subscription channel -> forward

The topic validator is the only place that runs before forwarding, so it does everything here:
cheap checks (one topic, size, not claiming to be from us), the application's validator, then

* ACCEPT: hand the message to the subscription's ``messages`` channel (awaiting: a full channel
  holds the validator, which is back-pressure instead of a drop) and return True -> forwarded;
* REJECT: return False, log why, count an offence against the forwarding peer (enough of them
  in a window bans it, see ``PeerManager.report``);
* IGNORE: hand the message to the subscription's ``ignored`` channel, return False -> not
  forwarded, and the node can hold it while it fetches what is missing.

py-libp2p's own subscription channel also receives accepted messages (it drops on overflow): it
is only drained and discarded here. The node's own publishes skip the validator (the node checked
what it signed) and are *not* delivered back to its subscription.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import libp2p.pubsub.pubsub as _pubsub_module
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pubsub import Pubsub

from ._config import P2PConfig
from ._errors import MessageTooLarge
from ._peers import PeerManager

log = logging.getLogger("poi.p2p.gossip")

MAX_TOPIC_BYTES = 256
LIBP2P_SUBSCRIPTION_CHANNEL_SIZE = 4096
"""py-libp2p's per-topic channel (default 32, a module global read at subscribe time): it only
feeds a drain task here, but a burst can complete many messages before that task runs."""
RECENT_VERDICT_S = 10.0
"""How long a verdict is remembered so concurrent copies of one message are judged once."""
_QUEUE_POLL_S = 0.002


@dataclass(frozen=True)
class Accept:
    """Valid: deliver to the application and forward."""


@dataclass(frozen=True)
class Reject:
    """Invalid: drop, do not forward, count against the peer that sent it."""

    reason: str


@dataclass(frozen=True)
class Ignore:
    """Not usable yet (e.g. a parent is missing): do not forward; hand to ``ignored``."""

    reason: str


Verdict = Accept | Reject | Ignore
ACCEPT = Accept()
Validator = Callable[[str, bytes], Awaitable[Verdict]]
"""``async (forwarding peer ID, data) -> Verdict``."""


@dataclass(frozen=True)
class GossipMessage:
    """One message handed to the application."""

    topic: str
    data: bytes
    msg_id: bytes
    """sha256(topic + NUL + data): the gossip deduplication key."""
    forwarder: str
    """Peer ID of the neighbour that sent it to us (the one penalised for a REJECT)."""
    origin: str
    """Peer ID of the node that published it (authenticated by its signature)."""
    reason: str = ""
    """Why it was ignored (only on the ``ignored`` channel)."""


@dataclass(frozen=True)
class PublishResult:
    msg_id: bytes
    duplicate: bool
    """True when the same bytes were seen on this topic within ``seen_ttl_s``: nothing was sent."""
    subscribers: int
    """Connected peers subscribed to the topic when it was published (0: nobody heard it)."""


class _DropCounter(logging.Handler):
    """Counts the outbound RPCs py-libp2p drops (full or oversized peer queue).

    py-libp2p only logs a drop at DEBUG (``libp2p.pubsub.rpc_queue``); this handler is the
    only one on that logger, which holds nothing else. Process-wide: one node per process.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages = 0
        self.control = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Dropping outbound RPC"):
            carried_messages = record.args[1] if isinstance(record.args, tuple) else 0
            if carried_messages:
                self.messages += 1
            else:
                self.control += 1


RPC_DROPS = _DropCounter()


def _count_rpc_drops() -> None:
    logger = logging.getLogger("libp2p.pubsub.rpc_queue")
    if RPC_DROPS not in logger.handlers:
        logger.addHandler(RPC_DROPS)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False


def message_id(topic: str, data: bytes) -> bytes:
    """The gossip message ID: sha256(topic + NUL + data) (topic-aware content address)."""
    return hashlib.sha256(topic.encode("utf-8") + b"\x00" + data).digest()


def _rpc_message_id(msg: Any) -> bytes:
    topics = list(msg.topicIDs)
    topic = topics[0] if len(topics) == 1 else "\n".join(sorted(topics))
    return message_id(topic, msg.data)


class _ContentMessageCache(MessageCache):
    """MessageCache keyed by the pubsub message ID.

    py-libp2p's MessageCache keys messages by from+seqno whatever ``msg_id_constructor`` says, so
    its IHAVE gossip advertises IDs that never match the receiver's seen-cache (keyed by the
    configured ID): every gossiped message was re-requested and re-sent. Keying by the same ID
    makes IHAVE/IWANT consistent with deduplication.
    """

    def put(self, msg: Any) -> None:
        mid = _rpc_message_id(msg)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class _PeerQueues(dict[ID, Any]):
    """``pubsub.peer_queues`` that gives each new outbound queue a larger capacity.

    py-libp2p creates every peer's ``RpcQueue()`` with its default capacity (32) and no way to
    configure it; a relay cannot apply back-pressure, so a burst overflows it and RPCs are
    dropped. Raising the capacity as each queue is registered is the least intrusive hook.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, peer: ID, queue: Any) -> None:
        inner = getattr(queue, "_queue", None)
        if inner is not None and hasattr(inner, "max_size"):
            inner.max_size = self.capacity
        super().__setitem__(peer, queue)


class Subscription:
    """What ``subscribe`` returns: the topic's two receive channels."""

    def __init__(self, topic: str, validator: Validator, buffer: int) -> None:
        self.topic = topic
        self.validator = validator
        self._send, self.messages = trio.open_memory_channel[GossipMessage](buffer)
        self._send_ignored, self.ignored = trio.open_memory_channel[GossipMessage](buffer)
        self.drain_scope = trio.CancelScope()

    def close(self) -> None:
        self._send.close()
        self._send_ignored.close()
        self.drain_scope.cancel()


class _Verdict:
    __slots__ = ("accepted", "done", "expires", "ignored")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.accepted = False
        self.ignored = False
        self.expires = math.inf


class Gossip:
    """The gossipsub router, the pubsub service and this layer's bookkeeping."""

    def __init__(self, host: Any, config: P2PConfig, peers: PeerManager) -> None:
        self.config = config
        self.peers = peers
        self.me: ID = host.get_id()
        self.router = GossipSub(
            protocols=[TProtocol(p) for p in config.gossip_protocols],
            degree=config.mesh_degree,
            degree_low=config.mesh_degree_low,
            degree_high=config.mesh_degree_high,
            heartbeat_interval=config.heartbeat_s,  # type: ignore[arg-type]
            heartbeat_initial_delay=min(0.1, config.heartbeat_s),
            adaptive_gossip_enabled=False,  # would rewrite a 1 s heartbeat to 30 s
            spam_protection_enabled=False,  # 10 msgs/s/peer/topic, applied to our own publishes
            do_px=False,  # peer exchange is ours (/poi/px/1)
        )
        self.router.mcache = _ContentMessageCache(
            self.router.mcache.window_size, self.router.mcache.history_size
        )
        _pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = max(
            _pubsub_module.SUBSCRIPTION_CHANNEL_SIZE, LIBP2P_SUBSCRIPTION_CHANNEL_SIZE
        )
        self.pubsub = Pubsub(
            host,
            self.router,
            strict_signing=True,
            msg_id_constructor=_rpc_message_id,
            seen_ttl=config.seen_ttl_s,
            max_concurrent_validator_count=config.max_concurrent_validators,
            # The validator below waits for room in the delivery channel; py-libp2p's timeout
            # would turn that wait into a rejection (and cache it). Ours bounds the app's part.
            validation_timeout=math.inf,
        )
        # Sequence numbers from the clock in nanoseconds: py-libp2p 0.8.1 starts them at
        # int(time.time()) (seconds) and gossipsub drops a message whose (origin, seqno) it has
        # seen with other content as "equivocation", so a node restarted within N seconds of
        # publishing N messages would have its next ones silently dropped by every peer.
        self.pubsub.counter = time.time_ns()
        self.pubsub.peer_queues = _PeerQueues(config.gossip_queue_capacity)
        self.subscriptions: dict[str, Subscription] = {}
        self._verdicts: dict[bytes, _Verdict] = {}
        self._stalled: set[ID] = set()
        self.stats = {
            "published": 0, "publish_duplicates": 0, "publish_waits": 0, "publish_stalls": 0,
            "delivered": 0, "rejected": 0, "ignored": 0, "validator_errors": 0,
        }
        _count_rpc_drops()
        peers.on_ban.append(self.pubsub.add_to_blacklist)
        peers.on_unban.append(self.pubsub.remove_from_blacklist)

    # --- subscribe ------------------------------------------------------------------------
    async def subscribe(self, topic: str, validator: Validator, nursery: trio.Nursery
                        ) -> Subscription:
        _check_topic(topic)
        if topic in self.subscriptions:
            raise ValueError(f"already subscribed to {topic!r}")
        sub = Subscription(topic, validator, self.config.delivery_buffer)
        self.subscriptions[topic] = sub

        async def validate(forwarder: ID, msg: Any) -> bool:
            return await self._validate(sub, forwarder, msg)

        self.pubsub.set_topic_validator(topic, validate, True)
        libp2p_sub = await self.pubsub.subscribe(topic)
        nursery.start_soon(self._drain, sub, libp2p_sub)
        return sub

    async def unsubscribe(self, topic: str) -> None:
        sub = self.subscriptions.pop(topic, None)
        if sub is None:
            return
        self.pubsub.remove_topic_validator(topic)
        await self.pubsub.unsubscribe(topic)
        sub.close()

    @staticmethod
    async def _drain(sub: Subscription, libp2p_sub: Any) -> None:
        """Empty py-libp2p's subscription channel: deliveries happen in the validator."""
        with sub.drain_scope:
            async for _ in libp2p_sub:
                pass

    # --- validation -----------------------------------------------------------------------
    async def _validate(self, sub: Subscription, forwarder: ID, msg: Any) -> bool:
        """py-libp2p's topic validator. Never raises: an error here would kill pubsub."""
        if forwarder == self.me:
            return True  # our own publish
        mid = _rpc_message_id(msg)
        previous = self._verdicts.get(mid)
        if previous is not None:  # a copy from another peer while the first is being judged
            await previous.done.wait()
            return previous.accepted
        verdict = self._verdicts[mid] = _Verdict()
        try:
            await self._judge(sub, forwarder, msg, mid, verdict)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            verdict.accepted = False  # unsubscribed or shutting down
        except Exception:
            log.exception("gossip validation crashed on topic %s", sub.topic)
            verdict.accepted = False
        finally:
            verdict.done.set()
            verdict.expires = trio.current_time() + RECENT_VERDICT_S
        return verdict.accepted

    async def _judge(self, sub: Subscription, forwarder: ID, msg: Any, mid: bytes,
                     verdict: _Verdict) -> None:
        """Decide, then deliver: ``verdict.accepted`` is whether py-libp2p forwards it."""
        peer = forwarder.to_base58()
        data = bytes(msg.data)
        if list(msg.topicIDs) != [sub.topic]:
            outcome: Verdict = Reject(f"message names topics {list(msg.topicIDs)}, not one")
        elif len(data) > self.config.max_gossip_bytes:
            outcome = Reject(f"{len(data)} bytes is over {self.config.max_gossip_bytes}")
        elif msg.from_id == self.me.to_bytes():
            outcome = Reject("claims to be published by us")
        else:
            outcome = await self._ask(sub, peer, data)
        if isinstance(outcome, Accept):
            await sub._send.send(GossipMessage(sub.topic, data, mid, peer, _origin(msg)))
            self.stats["delivered"] += 1
            verdict.accepted = True
        elif isinstance(outcome, Reject):
            self.stats["rejected"] += 1
            log.info("rejected gossip %s on %s from %s: %s", mid.hex()[:12], sub.topic, peer,
                     outcome.reason)
            self.peers.report(forwarder, f"gossip on {sub.topic}: {outcome.reason}")
        else:
            self.stats["ignored"] += 1
            verdict.ignored = True
            log.debug("ignored gossip %s on %s from %s: %s", mid.hex()[:12], sub.topic, peer,
                      outcome.reason)
            await sub._send_ignored.send(
                GossipMessage(sub.topic, data, mid, peer, _origin(msg), outcome.reason))

    async def _ask(self, sub: Subscription, peer: str, data: bytes) -> Verdict:
        """Run the application's validator with a deadline; errors are IGNORE, not REJECT."""
        try:
            with trio.move_on_after(self.config.validator_timeout_s):
                outcome = await sub.validator(peer, data)
                if isinstance(outcome, Accept | Reject | Ignore):
                    return outcome
                raise TypeError(f"validator returned {outcome!r}, not a Verdict")
            return Ignore(f"validator took over {self.config.validator_timeout_s}s")
        except Exception as exc:
            self.stats["validator_errors"] += 1
            log.exception("validator for %s failed", sub.topic)
            return Ignore(f"validator error: {exc!r}")

    # --- publish --------------------------------------------------------------------------
    async def publish(self, topic: str, data: bytes) -> PublishResult:
        _check_topic(topic)
        data = bytes(data)
        if len(data) > self.config.max_gossip_bytes:
            raise MessageTooLarge(len(data), self.config.max_gossip_bytes)
        mid = message_id(topic, data)
        if self.pubsub.seen_messages.has(mid):
            self.stats["publish_duplicates"] += 1
            return PublishResult(mid, True, 0)
        await self._wait_for_room()
        # A cached IGNORE of the same bytes (received earlier) must not swallow our publish.
        self.pubsub.validation_cache.cache.pop(mid, None)
        subscribers = len(self.pubsub.peer_topics.get(topic, ()))
        await self.pubsub.publish(topic, data)
        self.stats["published"] += 1
        return PublishResult(mid, False, subscribers)

    async def _wait_for_room(self) -> None:
        """Back-pressure: py-libp2p drops RPCs (DEBUG log only) when a peer's queue is full.

        Wait while any peer's outbound queue holds ``publish_queue_high_water`` RPCs; a peer that
        stays full for ``publish_stall_s`` is marked stalled and no longer waited for (until its
        queue drains), so one stuck peer cannot stop the node from publishing.
        """
        high = self.config.publish_queue_high_water
        deadline = None
        while True:
            busy = []
            for peer, queue in list(self.pubsub.peer_queues.items()):
                size = len(queue)
                if peer in self._stalled:
                    if size < high // 2:
                        self._stalled.discard(peer)
                    continue
                if size >= high:
                    busy.append(peer)
            if not busy:
                return
            now = trio.current_time()
            if deadline is None:
                deadline = now + self.config.publish_stall_s
                self.stats["publish_waits"] += 1
            elif now >= deadline:
                self.stats["publish_stalls"] += 1
                log.warning("peers %s did not drain their gossip queue in %.1fs; not waiting "
                            "for them", [p.to_base58() for p in busy], self.config.publish_stall_s)
                self._stalled.update(busy)
                return
            await trio.sleep(_QUEUE_POLL_S)

    # --- upkeep ---------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Once per heartbeat: trim what py-libp2p never trims with adaptive gossip off."""
        self.router.recent_message_deliveries.clear()
        now = trio.current_time()
        for mid in [m for m, v in self._verdicts.items() if v.expires < now]:
            if self._verdicts.pop(mid).ignored:
                # py-libp2p caches every failed validation (5 min): an IGNOREd message would be
                # dropped unseen if it came again once its parents are here. Forget it.
                self.pubsub.validation_cache.cache.pop(mid, None)
        live = set(self.pubsub.peer_queues)
        self._stalled &= live


    async def repair_mesh(self) -> None:
        """Re-send GRAFT to every mesh peer, so both ends agree on the mesh.

        py-libp2p adds a peer to its mesh, then sends GRAFT; when the peer's outbound queue does
        not exist yet (its subscription arrived before our stream to it was registered) the
        GRAFT is dropped without a trace. We then count on a peer that never forwards to us:
        measured on 10 nodes (D=4), one node got 20 of 300 messages. A GRAFT to a peer that
        already meshes us is a no-op there; one that had pruned us answers PRUNE, which
        corrects our side.
        """
        for topic, mesh in list(self.router.mesh.items()):
            for peer in list(mesh):
                if peer in self.pubsub.peer_queues:
                    await self.router.emit_graft(topic, peer)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise ValueError(f"a topic is a non-empty str of at most {MAX_TOPIC_BYTES} bytes")


def _origin(msg: Any) -> str:
    try:
        return ID(msg.from_id).to_base58()
    except Exception:
        return ""
