"""``GET /v1/events``: the node's event stream as server-sent events.

Each event is sent as ``id: <n>``, ``event: <kind>``, ``data: <json>``; kinds are those of
`node.events.EVENT_KINDS` (commit, attestation, head, final, evidence, challenge, slashing). A
comment line goes out every `KEEPALIVE_S` seconds so proxies keep the connection and a closed
client is noticed. A subscriber that falls too far behind has its stream closed by the hub; the
browser's EventSource reconnects and the page re-reads state over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import trio

from node.events import EVENT_KINDS, Event

KEEPALIVE_S = 15.0
RETRY_MS = 2000
"""How long a browser waits before reconnecting a dropped stream."""


def format_event(event: Event) -> str:
    data = json.dumps(event.data, separators=(",", ":"), sort_keys=True)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


async def event_stream(hub: Any, kinds: frozenset[str] | None = None,
                       keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[str]:
    """Yield SSE text for every event of ``hub`` from now on (only ``kinds`` when given)."""
    channel = hub.subscribe()
    with channel:
        yield f"retry: {RETRY_MS}\n: subscribed to {', '.join(sorted(kinds or EVENT_KINDS))}\n\n"
        while True:
            event = None
            with anyio.move_on_after(keepalive_s):
                try:
                    event = await channel.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return  # the hub dropped a subscriber that fell behind: reconnect
            if event is None:
                yield ": keep-alive\n\n"
            elif kinds is None or event.kind in kinds:
                yield format_event(event)
