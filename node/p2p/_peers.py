"""Connections: peer events, bans, the bootstrap reconnect loop and peer exchange.

py-libp2p reports connections one by one through a network *notifee*, from inside the swarm's own
tasks. The notifee here only updates plain state (the set of live connections per peer and a
generation counter bumped on every 0 -> 1 transition) and wakes a dispatcher task; the dispatcher
turns the state into ``PeerEvent`` s for the node. So a slow consumer of events never stalls the
swarm, memory stays one entry per peer, and a peer that drops and comes back between two
dispatcher rounds is still reported as DISCONNECTED then CONNECTED (its generation changed).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio
from libp2p.abc import INotifee
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from ._config import P2PConfig
from ._errors import ConfigError

log = logging.getLogger("poi.p2p.peers")

PEER_EXCHANGE_PROTOCOL = "/poi/px/1"
PEER_EXCHANGE_MAX_PEERS = 32
"""Most peers one peer-exchange response lists."""


class PeerEventKind(Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class PeerEvent:
    """A peer gained its first connection to us, or lost its last one."""

    kind: PeerEventKind
    peer_id: str


def parse_peer_multiaddr(text: str) -> tuple[ID, Multiaddr]:
    """``/ip4/../tcp/../p2p/<id>`` -> (peer ID, transport address without /p2p)."""
    try:
        addr = Multiaddr(text)
        peer = addr.value_for_protocol("p2p")
    except Exception as exc:
        raise ConfigError(f"not a multiaddr: {text!r} ({exc})") from None
    if not peer:
        raise ConfigError(f"bootstrap address {text!r} has no /p2p/<peer-id> part")
    try:
        return ID.from_base58(str(peer)), addr.decapsulate(Multiaddr(f"/p2p/{peer}"))
    except Exception as exc:
        raise ConfigError(f"bad peer ID in {text!r}: {exc}") from None


class _Notifee(INotifee):
    """Swarm callbacks -> plain state; never blocks the swarm."""

    def __init__(self, peers: PeerManager) -> None:
        self._peers = peers

    async def connected(self, network: Any, conn: Any) -> None:
        self._peers._on_connection(conn, up=True)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._peers._on_connection(conn, up=False)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


class PeerManager:
    """Who is connected, who is banned, and keeping the bootstrap peers connected."""

    def __init__(self, host: Any, config: P2PConfig) -> None:
        self.host = host
        self.network = host.get_network()
        self.config = config
        self.me = host.get_id()
        self._conns: dict[ID, set[int]] = {}
        self._generation: dict[ID, int] = {}
        self._reported: dict[ID, int] = {}
        self._changed: set[ID] = set()
        self._wake = trio.Event()
        self._peer_changed: dict[ID, trio.Event] = {}
        self._subscribers: list[trio.MemorySendChannel[PeerEvent]] = []
        self._banned: dict[ID, float] = {}
        self._rejects: dict[ID, deque[float]] = {}
        self.bootstrap: dict[ID, Multiaddr] = dict(
            parse_peer_multiaddr(text) for text in config.bootstrap
        )
        self.on_ban: list[Callable[[ID], None]] = []
        self.on_unban: list[Callable[[ID], None]] = []
        self.stats = {"dials": 0, "dial_failures": 0, "bans": 0, "refused": 0}
        self.network.register_notifee(_Notifee(self))

    # --- state from the swarm -------------------------------------------------------------
    def _on_connection(self, conn: Any, *, up: bool) -> None:
        try:
            peer = conn.muxed_conn.peer_id
        except AttributeError:
            return
        live = self._conns.setdefault(peer, set())
        if up:
            if not live:
                self._generation[peer] = self._generation.get(peer, 0) + 1
            live.add(id(conn))
        else:
            live.discard(id(conn))
            if not live:
                del self._conns[peer]
        self._changed.add(peer)
        self._wake.set()
        event = self._peer_changed.pop(peer, None)
        if event is not None:
            event.set()

    def is_connected(self, peer: ID) -> bool:
        return bool(self._conns.get(peer))

    def connected(self) -> list[ID]:
        """Peers with at least one live connection that are not banned."""
        return [peer for peer in self._conns if not self.is_banned(peer)]

    async def wait_change(self, peer: ID) -> None:
        """Return at the next connection change of ``peer``."""
        event = self._peer_changed.get(peer)
        if event is None:
            event = self._peer_changed[peer] = trio.Event()
        await event.wait()

    # --- events to the node ---------------------------------------------------------------
    def open_events(self, buffer: int = 64) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A new receive channel of PeerEvents (close it when done; a full one waits)."""
        send, receive = trio.open_memory_channel[PeerEvent](buffer)
        self._subscribers.append(send)
        # Peers already connected are reported to a late subscriber first.
        for peer in list(self._reported):
            try:
                send.send_nowait(PeerEvent(PeerEventKind.CONNECTED, peer.to_base58()))
            except trio.WouldBlock:
                break
        return receive

    async def _emit(self, event: PeerEvent) -> None:
        for send in list(self._subscribers):
            try:
                await send.send(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(send)

    async def dispatch(self) -> None:
        """Turn connection changes into events; close banned and surplus peers."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            changed, self._changed = self._changed, set()
            for peer in changed:
                up = self.is_connected(peer)
                if up and self._refuse(peer):
                    await self.close_peer(peer)
                    up = False
                generation = self._generation.get(peer, 0)
                reported = self._reported.get(peer)
                if reported is not None and (not up or reported != generation):
                    del self._reported[peer]
                    await self._emit(PeerEvent(PeerEventKind.DISCONNECTED, peer.to_base58()))
                if up and peer not in self._reported:
                    self._reported[peer] = generation
                    await self._emit(PeerEvent(PeerEventKind.CONNECTED, peer.to_base58()))

    def _refuse(self, peer: ID) -> bool:
        if self.is_banned(peer):
            log.info("refusing banned peer %s", peer)
            self.stats["refused"] += 1
            return True
        crowded = len(self._reported) >= self.config.max_peers
        if crowded and peer not in self.bootstrap and peer not in self._reported:
            log.info("refusing peer %s: already %d peers", peer, len(self._reported))
            self.stats["refused"] += 1
            return True
        return False

    async def close_peer(self, peer: ID) -> None:
        """Close every connection to ``peer`` (bounded to 2 s)."""
        with trio.move_on_after(2):
            try:
                await self.network.close_peer(peer)
            except Exception as exc:
                log.debug("closing %s: %s", peer, exc)

    # --- penalties ------------------------------------------------------------------------
    def is_banned(self, peer: ID) -> bool:
        expiry = self._banned.get(peer)
        return expiry is not None and expiry > trio.current_time()

    def report(self, peer: ID, reason: str) -> bool:
        """Count one offence; ban the peer at the threshold. True if this call banned it."""
        if peer == self.me:
            return False
        now = trio.current_time()
        window = self._rejects.setdefault(peer, deque())
        window.append(now)
        while window and window[0] < now - self.config.reject_window_s:
            window.popleft()
        log.warning("peer %s misbehaved (%d in %.0fs): %s", peer, len(window),
                    self.config.reject_window_s, reason)
        if len(window) >= self.config.reject_threshold and not self.is_banned(peer):
            self.ban(peer, self.config.ban_s, f"{len(window)} offences, last: {reason}")
            return True
        return False

    def ban(self, peer: ID, seconds: float, reason: str) -> None:
        """Disconnect ``peer`` and refuse it for ``seconds``."""
        self._banned[peer] = trio.current_time() + seconds
        self._rejects.pop(peer, None)
        self.stats["bans"] += 1
        log.warning("banning peer %s for %.0fs: %s", peer, seconds, reason)
        for hook in self.on_ban:
            hook(peer)
        self._changed.add(peer)
        self._wake.set()

    def sweep_bans(self) -> None:
        """End expired bans and forget offence windows that have gone quiet."""
        now = trio.current_time()
        for peer, window in list(self._rejects.items()):
            if not window or window[-1] < now - self.config.reject_window_s:
                del self._rejects[peer]
        for peer, expiry in list(self._banned.items()):
            if expiry <= now:
                del self._banned[peer]
                log.info("ban on %s expired", peer)
                for hook in self.on_unban:
                    hook(peer)

    # --- dialing --------------------------------------------------------------------------
    async def dial(self, peer: ID, addr: Multiaddr) -> None:
        """Open a connection to ``peer`` at ``addr`` (no-op when connected).

        Calls ``swarm.dial_addr`` directly: ``host.connect`` -> ``swarm.dial_peer`` waits a fixed
        250 ms "happy eyeballs" head start even when the only address answers in ~10 ms, and
        marks a peer whose dial failed as unreachable for 60 s (its negative cache).
        """
        if self.is_connected(peer):
            return
        if self.is_banned(peer):
            raise ConnectionRefusedError(f"peer {peer} is banned")
        self.stats["dials"] += 1
        try:
            with trio.fail_after(self.config.dial_timeout_s):
                self.host.get_peerstore().add_addrs(peer, [addr], 3600)
                await self.network.dial_addr(addr, peer)
        except BaseException:
            self.stats["dial_failures"] += 1
            raise

    async def keep_connected(self, peer: ID, addr: Multiaddr) -> None:
        """Forever: dial ``peer`` whenever it is not connected, backing off on failures.

        py-libp2p's own bootstrap drops a peer after three failed dials; this loop never does,
        so a bootstrap node that is down at start or restarts later is reconnected.
        """
        backoff = self.config.reconnect_initial_backoff_s
        while True:
            if self.is_connected(peer):
                await self.wait_change(peer)
                backoff = self.config.reconnect_initial_backoff_s
                continue
            expiry = self._banned.get(peer)
            if expiry is not None and expiry > trio.current_time():
                await trio.sleep_until(expiry)
                continue
            try:
                await self.dial(peer, addr)
                log.info("connected to bootstrap peer %s", peer)
                backoff = self.config.reconnect_initial_backoff_s
            except Exception as exc:
                log.debug("bootstrap dial %s failed: %s; retry in %.2fs", peer, exc, backoff)
                await trio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.config.reconnect_max_backoff_s)

    # --- peer exchange --------------------------------------------------------------------
    def addresses_of(self, peer: ID) -> list[str]:
        """``peer``'s dialable TCP addresses from the peerstore (identify fills it)."""
        try:
            addrs = self.host.get_peerstore().addrs(peer)
        except Exception:
            return []
        out = []
        for addr in addrs:
            text = str(addr)
            if "/tcp/" in text and "/p2p-circuit" not in text and "/ws" not in text:
                text = text.split("/p2p/")[0]
                if text not in out:
                    out.append(text)
        return out

    def exchange_response(self, requester: ID) -> dict[str, Any]:
        """The peers we list to ``requester``: connected, not banned, with addresses."""
        peers = [p for p in self.connected() if p != requester]
        random.shuffle(peers)
        listed = []
        for peer in peers:
            addrs = self.addresses_of(peer)
            if addrs:
                listed.append({"id": peer.to_base58(), "addrs": addrs[:4]})
            if len(listed) >= PEER_EXCHANGE_MAX_PEERS:
                break
        return {"peers": listed}

    def candidates(self, response: Any) -> Iterable[tuple[ID, Multiaddr]]:
        """Dialable (peer, address) pairs from a peer-exchange response; junk is skipped."""
        entries = response.get("peers") if isinstance(response, dict) else None
        if not isinstance(entries, list):
            return
        for entry in entries[:PEER_EXCHANGE_MAX_PEERS]:
            try:
                peer = ID.from_base58(entry["id"])
                addr = Multiaddr(entry["addrs"][0])
            except Exception:
                continue
            if peer == self.me or self.is_connected(peer) or self.is_banned(peer):
                continue
            yield peer, addr
