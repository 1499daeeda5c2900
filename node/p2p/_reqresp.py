"""Request/response over libp2p streams, with our own frames (not ``libp2p.request_response``).

Wire format, per protocol ID (e.g. ``/poi/sync/1``): the requester opens a stream and writes one
frame (uvarint length + canonical MessagePack, see ``_frames``) holding the request map; the
server answers with one frame ``{"ok": <response map>}`` or ``{"error": {"type", "message"}}``.
A stream carries any number of request/response pairs in turn, so the requester keeps a few idle
streams per (peer, protocol) and reuses them (a new stream costs a multistream-select round trip).
Concurrency comes from concurrent streams; the server runs at most ``max_concurrent_requests``
handlers at once. A frame over ``max_frame_bytes`` is refused with an error frame where possible
and the stream is reset.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.host.exceptions import StreamFailure
from libp2p.peer.id import ID

from ._config import P2PConfig
from ._errors import (
    FrameError,
    FrameTooLarge,
    PeerUnreachable,
    ProtocolNotSupported,
    RemoteError,
    RequestTimeout,
    StreamBroken,
)
from ._frames import END_OF_STREAM, encode_frame, read_frame, write_frame
from ._peers import PeerManager

log = logging.getLogger("poi.p2p.reqresp")

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``async (requesting peer ID, request map) -> response map``; raising sends an error reply."""

_STREAM_ERRORS = (BaseLibp2pError, EOFError, OSError, trio.BrokenResourceError,
                  trio.ClosedResourceError)
_MAX_ERROR_TEXT = 2000


class RequestResponse:
    def __init__(self, host: Any, config: P2PConfig, peers: PeerManager) -> None:
        self.host = host
        self.config = config
        self.peers = peers
        self.handlers: dict[str, Handler] = {}
        self._limiter = trio.CapacityLimiter(config.max_concurrent_requests)
        self._idle: dict[tuple[ID, str], list[tuple[Any, float]]] = {}
        self.stats = {"served": 0, "handler_errors": 0, "requests": 0, "request_failures": 0,
                      "timeouts": 0, "streams_opened": 0, "streams_reused": 0}

    # --- serving --------------------------------------------------------------------------
    def set_handler(self, protocol_id: str, handler: Handler) -> None:
        self.handlers[protocol_id] = handler
        self.host.set_stream_handler(
            TProtocol(protocol_id), functools.partial(self._serve, protocol_id)
        )

    async def _serve(self, protocol_id: str, stream: Any) -> None:
        peer: ID = stream.muxed_conn.peer_id
        if self.peers.is_banned(peer):
            await _reset(stream)
            return
        try:
            while True:
                with trio.move_on_after(self.config.request_idle_s) as idle:
                    request = await read_frame(stream, max_bytes=self.config.max_frame_bytes)
                if idle.cancelled_caught or request is END_OF_STREAM:
                    await stream.close()
                    return
                reply = await self._answer(protocol_id, peer, request)
                try:
                    await write_frame(stream, reply, max_bytes=self.config.max_frame_bytes)
                except FrameError as exc:
                    log.error("%s handler's reply to %s cannot be sent: %s", protocol_id, peer,
                              exc)
                    await write_frame(stream, _error(type(exc).__name__, str(exc)))
        except FrameError as exc:
            log.warning("%s: bad request frame from %s: %s", protocol_id, peer, exc)
            self.peers.report(peer, f"{protocol_id}: {exc}")
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):
                    await write_frame(stream, _error(type(exc).__name__, str(exc)))
            await _reset(stream)
        except _STREAM_ERRORS as exc:
            log.debug("%s stream from %s ended: %r", protocol_id, peer, exc)
            await _reset(stream)

    async def _answer(self, protocol_id: str, peer: ID, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error("BadRequest", "a request is a map")
        handler = self.handlers[protocol_id]
        async with self._limiter:
            try:
                response = await handler(peer.to_base58(), request)
                if not isinstance(response, dict):
                    raise TypeError(f"handler returned a {type(response).__name__}, not a dict")
                self.stats["served"] += 1
                return {"ok": response}
            except Exception as exc:
                self.stats["handler_errors"] += 1
                log.info("%s handler failed for %s: %r", protocol_id, peer, exc)
                return _error(type(exc).__name__, str(exc))

    # --- requesting -----------------------------------------------------------------------
    async def request(self, peer_id: str, protocol_id: str, request: dict[str, Any], *,
                      timeout: float) -> dict[str, Any]:
        """Send ``request``; return the peer's response map.

        Raises RequestTimeout, PeerUnreachable, ProtocolNotSupported, RemoteError (the
        handler raised), StreamBroken, FrameTooLarge (either side's frame over the cap) or
        FrameError (the reply is not canonical).
        """
        peer = ID.from_base58(peer_id)
        frame = encode_frame(request if isinstance(request, dict) else _not_a_map(request),
                             max_bytes=self.config.max_frame_bytes)
        self.stats["requests"] += 1
        try:
            with trio.fail_after(timeout):
                reply = await self._exchange(peer, protocol_id, frame)
        except trio.TooSlowError:
            self.stats["timeouts"] += 1
            raise RequestTimeout(
                f"no response from {peer_id} on {protocol_id} within {timeout}s"
            ) from None
        except BaseException:
            self.stats["request_failures"] += 1
            raise
        if not isinstance(reply, dict) or len(reply) != 1:
            raise FrameError("reply is not {'ok': ...} or {'error': ...}")
        if isinstance(reply.get("ok"), dict):
            return reply["ok"]
        err = reply.get("error")
        if isinstance(err, dict):
            raise RemoteError(str(err.get("type", "?")), str(err.get("message", "")))
        raise FrameError("reply is not {'ok': map} or {'error': map}")

    async def _exchange(self, peer: ID, protocol_id: str, frame: bytes) -> Any:
        """One request/response on a pooled or new stream (a dead pooled one is replaced)."""
        while True:
            stream, reused = await self._take_stream(peer, protocol_id)
            answered = False
            try:
                await stream.write(frame)
                reply = await read_frame(stream, max_bytes=self.config.max_frame_bytes)
                if reply is END_OF_STREAM:
                    raise StreamBroken(f"{peer} closed the stream without a response")
                answered = True
            except (StreamBroken, *_STREAM_ERRORS) as exc:
                await _reset(stream)
                if reused:
                    # A pooled stream the server had already closed: the request was not read.
                    log.debug("pooled stream to %s was dead (%r); retrying on a new one", peer,
                              exc)
                    continue
                if isinstance(exc, StreamBroken):
                    raise
                raise StreamBroken(f"stream to {peer} failed: {exc!r}") from exc
            except FrameError as exc:
                await _reset(stream)
                if not isinstance(exc, FrameTooLarge):
                    self.peers.report(peer, f"{protocol_id}: bad reply frame: {exc}")
                raise
            except BaseException:
                await _reset(stream)  # cancelled (timeout) mid-request: the stream is unusable
                raise
            finally:
                if answered:
                    await self._give_back(peer, protocol_id, stream)
            return reply

    async def _take_stream(self, peer: ID, protocol_id: str) -> tuple[Any, bool]:
        idle = self._idle.get((peer, protocol_id))
        while idle:
            stream, _ = idle.pop()
            if not _is_dead(stream):
                self.stats["streams_reused"] += 1
                return stream, True
        if self.peers.is_banned(peer):
            raise PeerUnreachable(f"peer {peer} is banned")
        if not self.peers.is_connected(peer):
            await self._connect(peer)
        try:
            stream = await self.host.new_stream(peer, [TProtocol(protocol_id)])
        except StreamFailure as exc:
            raise ProtocolNotSupported(f"{peer} does not serve {protocol_id}") from exc
        except _STREAM_ERRORS as exc:
            raise PeerUnreachable(f"cannot open a stream to {peer}: {exc!r}") from exc
        self.stats["streams_opened"] += 1
        return stream, False

    async def _connect(self, peer: ID) -> None:
        try:
            addrs = list(self.host.get_peerstore().addrs(peer))
        except Exception:
            addrs = []
        errors = []
        for addr in addrs:
            try:
                await self.peers.dial(peer, addr)
                return
            except Exception as exc:
                errors.append(repr(exc))
        raise PeerUnreachable(f"not connected to {peer} and no known address answered "
                              f"({'; '.join(errors) or 'no addresses'})")

    async def _give_back(self, peer: ID, protocol_id: str, stream: Any) -> None:
        idle = self._idle.setdefault((peer, protocol_id), [])
        if len(idle) < self.config.pooled_streams_per_peer and not _is_dead(stream):
            idle.append((stream, trio.current_time()))
        else:
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):
                    await stream.close()

    async def close_idle(self, older_than_s: float) -> None:
        """Close pooled streams idle for longer than ``older_than_s`` (and dead ones)."""
        cutoff = trio.current_time() - older_than_s
        for key, idle in list(self._idle.items()):
            keep = []
            for stream, since in idle:
                if since >= cutoff and not _is_dead(stream):
                    keep.append((stream, since))
                else:
                    with trio.move_on_after(1):
                        with contextlib.suppress(Exception):
                            await stream.close()
            if keep:
                self._idle[key] = keep
            else:
                self._idle.pop(key, None)

    def forget_peer(self, peer: ID) -> None:
        for key in [k for k in self._idle if k[0] == peer]:
            del self._idle[key]


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message[:_MAX_ERROR_TEXT]}}


def _not_a_map(request: Any) -> dict[str, Any]:
    raise TypeError(f"a request is a dict, not a {type(request).__name__}")


def _is_dead(stream: Any) -> bool:
    try:
        return bool(stream.is_closed) or bool(getattr(stream.muxed_conn, "is_closed", False))
    except Exception:
        return True


async def _reset(stream: Any) -> None:
    """Reset ``stream``, even from a cancelled scope (a timed-out request), within 1 s."""
    with trio.CancelScope(deadline=trio.current_time() + 1, shield=True), \
            contextlib.suppress(Exception):
        await stream.reset()
