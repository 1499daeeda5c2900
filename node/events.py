"""The node's event stream: chain events fanned out to any number of subscribers.

`TargetChain` calls listeners synchronously from the event loop; the hub copies each event into
every subscriber's bounded channel without waiting. A subscriber that falls behind (a stalled
browser tab) loses its stream — it is closed and must reconnect and re-read state over HTTP —
rather than slowing ingest or growing memory without bound.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import trio

EVENT_KINDS = ("commit", "attestation", "head", "final", "evidence", "challenge", "slashing")
SUBSCRIBER_BUFFER = 1024


@dataclass(frozen=True)
class Event:
    id: int
    """Increasing per node process (the SSE ``id:`` field)."""
    kind: str
    data: dict


class EventHub:
    def __init__(self, buffer: int = SUBSCRIBER_BUFFER) -> None:
        self._buffer = buffer
        self._ids = itertools.count(1)
        self._subscribers: set[trio.MemorySendChannel] = set()

    def publish(self, kind: str, data: dict) -> None:
        """Usable as a `TargetChain` listener. Never blocks."""
        event = Event(next(self._ids), kind, data)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(channel)
                channel.close()

    def subscribe(self) -> trio.MemoryReceiveChannel:
        """A channel of `Event`s from now on; close it when done."""
        send, receive = trio.open_memory_channel(self._buffer)
        self._subscribers.add(send)
        return receive

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
