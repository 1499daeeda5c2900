"""Sync: the request/response protocol ``/poi/sync/1`` and the loops that keep a node complete.

Gossip is for announcements; sync is for completeness (DESIGN §4): nothing depends on a gossip
message arriving. Requests and responses are maps in the p2p layer's frames (uvarint length +
canonical MessagePack); every request carries ``op``:

``{"op": "get", "cids": [cid, …]}`` → ``{"objects": [[cid, bytes], …], "missing": [cid, …],
"truncated": bool}``
    Objects by CID (at most `MAX_GET_CIDS` per request, at most `MAX_RESPONSE_BYTES` of objects
    per response: what does not fit is left out and ``truncated`` is set; ask again). Only
    objects in the server's DAG are served (not pending ones). The requester checks every
    object against the CID it asked for (`CID.matches`) and that it asked for it at all; a peer
    that sends anything else is reported (p2p offence window) and nothing it sent is stored.
``{"op": "heads", "target": cid}`` → ``{"head": cid, "finalized": cid, "epoch": int,
"counts": {kind: int}}``
    The peer's fork-choice view of a target.
``{"op": "list", "target": cid, "kind": kind, "since": int, "limit": int}`` →
``{"cids": [cid, …], "next": int, "more": bool}``
    A target's objects of one kind (commits, attestations, evidence, challenges, rulings,
    stake) in the server's arrival order, which is topological (parents before children), from
    arrival number ``since`` (exclusive, 0 = the start); ``next`` is the cursor for the next
    page. At most `MAX_LIST` per page.

A malformed request (not one of these shapes, a CID that is not a CID, too many CIDs) is
answered with an error and counts as an offence of the requester, like a bad frame.

**Catch-up** (`Sync.catch_up`): for each followed target, ask the peer's ``heads`` (its counts
per kind); for each kind in dependency order (commits, attestations, evidence, challenges,
rulings, stake) whose count changed since we last walked it, walk the peer's list from the
cursor we reached last time with that peer, get what we lack in batches, and ingest it exactly as
gossip would be (every tier but the gossip-only stake filter). It runs when a peer connects (a
late joiner, or a node back from a partition, catches up from whoever it meets first) and, as
anti-entropy, every `ANTI_ENTROPY_S` with a few random peers. **Missing dependencies** of pending
objects are fetched by ``get`` from the peer that sent the object first, then any peer
(`Sync.fetch`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import trio

from dag.store import ARRIVAL_TABLES, Store
from protocol.cid import CID
from protocol.errors import ProtocolError

from .chain import TargetChain
from .ingest import Ingest
from .p2p import P2P, PeerEventKind, ProtocolNotSupported, RequestError
from .topics import KINDS

log = logging.getLogger("poi.sync")

PROTOCOL = "/poi/sync/1"
MAX_GET_CIDS = 1024
MAX_RESPONSE_BYTES = 8 << 20
"""Objects' bytes in one ``get`` response (the frame cap is 32 MiB)."""
MAX_LIST = 2048
LIST_PAGE = 1024
GET_BATCH = 512
REQUEST_TIMEOUT_S = 10.0
FETCH_TIMEOUT_S = 30.0
ANTI_ENTROPY_S = 5.0
ANTI_ENTROPY_PEERS = 2
MISSING_RETRY_S = (5.0, 300.0)
"""A dependency no peer delivered is asked for again after 5 s, then 10, 20… up to 300 s
(pending objects whose parents nobody has must not keep the node asking every peer)."""
CATCH_UP_ORDER = ("commits", "attestations", "evidence", "challenges", "rulings", "stake")

assert set(ARRIVAL_TABLES) == set(KINDS)


class SyncRequestError(ValueError):
    """A request that is not one of the protocol's shapes (an offence of the requester)."""


class FetchError(Exception):
    """Objects that no peer delivered before the deadline."""


# -- reading the store ----------------------------------------------------------------------------

def read_objects(store: Store, cids: Sequence[CID], max_bytes: int = MAX_RESPONSE_BYTES
                 ) -> dict[str, Any]:
    objects: list[list[bytes]] = []
    missing: list[bytes] = []
    total = 0
    truncated = False
    for cid in cids:
        data = store.get_bytes(cid)
        if data is None:
            missing.append(bytes(cid))
            continue
        if objects and total + len(data) > max_bytes:
            truncated = True
            break
        objects.append([bytes(cid), data])
        total += len(data)
    return {"objects": objects, "missing": missing, "truncated": truncated}


# -- request shapes -------------------------------------------------------------------------------

def _cid(value: Any, where: str) -> CID:
    if not isinstance(value, bytes):
        raise SyncRequestError(f"{where}: expected a binary CID, got {type(value).__name__}")
    try:
        return CID(value)
    except ProtocolError as exc:
        raise SyncRequestError(f"{where}: {exc}") from None


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise SyncRequestError(f"{where}: expected an integer in [{lo}, {hi}]")
    return value


def parse_request(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check a request's shape; return (op, arguments). SyncRequestError says what is wrong."""
    op = request.get("op")
    if op == "get":
        _exact(request, {"op", "cids"})
        cids = request["cids"]
        if not isinstance(cids, list) or not 1 <= len(cids) <= MAX_GET_CIDS:
            raise SyncRequestError(f"get.cids: expected a list of 1..{MAX_GET_CIDS} CIDs")
        return op, {"cids": [_cid(c, f"get.cids[{i}]") for i, c in enumerate(cids)]}
    if op == "heads":
        _exact(request, {"op", "target"})
        return op, {"target": _cid(request["target"], "heads.target")}
    if op == "list":
        _exact(request, {"op", "target", "kind", "since", "limit"})
        kind = request["kind"]
        if kind not in KINDS:
            raise SyncRequestError(f"list.kind: {kind!r} is not one of {', '.join(KINDS)}")
        return op, {"target": _cid(request["target"], "list.target"), "kind": kind,
                    "since": _int(request["since"], "list.since", 0, 1 << 62),
                    "limit": _int(request["limit"], "list.limit", 1, MAX_LIST)}
    raise SyncRequestError(f"unknown op {op!r} (get, heads, list)")


def _exact(request: dict[str, Any], keys: set[str]) -> None:
    if set(request) != keys:
        raise SyncRequestError(f"{request.get('op')}: expected exactly the fields "
                               f"{', '.join(sorted(keys))}")


# -- the protocol ---------------------------------------------------------------------------------

class Sync:
    """Serves ``/poi/sync/1`` and runs catch-up, anti-entropy and dependency fetching."""

    def __init__(self, p2p: P2P, store: Store, ingest: Ingest, chains: dict[CID, TargetChain],
                 follow: set[CID], *, anti_entropy_s: float = ANTI_ENTROPY_S) -> None:
        self.p2p = p2p
        self.store = store
        self.ingest = ingest
        self.chains = chains
        self.follow = follow
        self.anti_entropy_s = anti_entropy_s
        self._cursors: dict[tuple[str, CID, str], int] = {}
        self._walked: dict[tuple[str, CID, str], Any] = {}
        """(peer, target, kind) -> the peer's count when we last walked its list to the end."""
        self._catching_up: set[str] = set()
        self._missing_wake = trio.Event()
        self._missing_hint: str | None = None
        self._retry: dict[CID, tuple[float, float]] = {}
        """Missing dependency -> (not before this trio time, current back-off)."""
        self.synced_with: set[str] = set()
        """Peers a full catch-up round completed with."""
        self.on_synced: list[Callable[[str], None]] = []
        self.stats: dict[str, int] = {
            "sync_served_total": 0, "sync_bad_requests_total": 0, "sync_requests_total": 0,
            "sync_request_failures_total": 0, "sync_objects_fetched_total": 0,
            "sync_bad_objects_total": 0, "sync_catch_ups_total": 0,
            "sync_fetch_failures_total": 0,
        }

    # -- serving ----------------------------------------------------------------------------------
    async def handle(self, peer: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            op, args = parse_request(request)
        except SyncRequestError as exc:
            self.stats["sync_bad_requests_total"] += 1
            self.p2p.report(peer, f"{PROTOCOL}: {exc}")
            raise
        self.stats["sync_served_total"] += 1
        if op == "get":
            return await trio.to_thread.run_sync(read_objects, self.store, args["cids"])
        chain = self.chains.get(args["target"])
        if chain is None:
            raise LookupError(f"this node does not follow target {args['target']}")
        if op == "heads":
            return {"head": bytes(chain.head), "finalized": bytes(chain.finalized),
                    "epoch": chain.epoch,
                    "counts": {kind: self.store.count_of(kind, chain.cid) for kind in KINDS}}
        page = self.store.arrivals(args["kind"], chain.cid, args["since"], args["limit"])
        return {"cids": [bytes(cid) for _, cid in page],
                "next": page[-1][0] if page else args["since"],
                "more": len(page) == args["limit"]}

    # -- requesting -------------------------------------------------------------------------------
    async def _request(self, peer: str, request: dict[str, Any]) -> dict[str, Any]:
        self.stats["sync_requests_total"] += 1
        try:
            return await self.p2p.request(peer, PROTOCOL, request, timeout=REQUEST_TIMEOUT_S)
        except RequestError:
            self.stats["sync_request_failures_total"] += 1
            raise

    def _bad_reply(self, peer: str, reason: str) -> RequestError:
        self.stats["sync_bad_objects_total"] += 1
        self.p2p.report(peer, f"{PROTOCOL} reply: {reason}")
        return RequestError(f"bad {PROTOCOL} reply from {peer}: {reason}")

    async def get(self, peer: str, cids: Sequence[CID]) -> list[tuple[CID, bytes]]:
        """The objects ``peer`` has among ``cids``, each checked against its CID."""
        asked = {bytes(c): c for c in cids}
        reply = await self._request(peer, {"op": "get", "cids": list(asked)})
        entries = reply.get("objects")
        if not isinstance(entries, list):
            raise self._bad_reply(peer, "get reply without an objects list")
        out: list[tuple[CID, bytes]] = []
        for entry in entries:
            if (not isinstance(entry, list) or len(entry) != 2
                    or not isinstance(entry[0], bytes) or not isinstance(entry[1], bytes)):
                raise self._bad_reply(peer, "an object entry is not [cid, bytes]")
            cid = asked.pop(entry[0], None)
            if cid is None:
                raise self._bad_reply(peer, "an object we did not ask for (or twice)")
            if not cid.matches(entry[1]):
                raise self._bad_reply(peer, f"bytes that do not hash to {cid}")
            out.append((cid, entry[1]))
        return out

    async def heads(self, peer: str, target: CID) -> dict[str, Any]:
        reply = await self._request(peer, {"op": "heads", "target": bytes(target)})
        try:
            return {"head": CID(reply["head"]), "finalized": CID(reply["finalized"]),
                    "epoch": int(reply["epoch"]), "counts": dict(reply["counts"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad_reply(peer, f"malformed heads reply: {exc!r}") from None

    async def list(self, peer: str, target: CID, kind: str, since: int, limit: int = LIST_PAGE
                   ) -> tuple[list[CID], int, bool]:
        reply = await self._request(peer, {"op": "list", "target": bytes(target), "kind": kind,
                                           "since": since, "limit": limit})
        try:
            cids = [CID(c) for c in reply["cids"]]
            nxt, more = reply["next"], reply["more"]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad_reply(peer, f"malformed list reply: {exc!r}") from None
        if type(nxt) is not int or nxt < since or not isinstance(more, bool) \
                or len(cids) > limit:
            raise self._bad_reply(peer, "list reply with a bad cursor or too many CIDs")
        return cids, nxt, more

    # -- getting and ingesting --------------------------------------------------------------------
    def _lacking(self, cids: Iterable[CID]) -> list[CID]:
        return [c for c in cids if not self.store.has(c) and not self.store.is_pending(c)]

    async def pull(self, peer: str, cids: Sequence[CID]) -> tuple[int, set[CID]]:
        """Get ``cids`` from ``peer`` (batches, re-asking after truncation) and ingest them.
        Returns (objects ingested, dependencies still missing)."""
        todo = list(dict.fromkeys(cids))
        got_total = 0
        missing: set[CID] = set()
        while todo:
            batch, todo = todo[:GET_BATCH], todo[GET_BATCH:]
            pairs = await self.get(peer, batch)
            if pairs:
                admitted, problems = await self.ingest.synced(pairs, peer)
                if problems:
                    raise self._bad_reply(peer, f"{len(problems)} invalid object(s), first: "
                                                f"{problems[0]}")
                missing |= admitted.missing
                got_total += len(pairs)
                self.stats["sync_objects_fetched_total"] += len(pairs)
            received = {cid for cid, _ in pairs}
            left = [c for c in batch if c not in received]
            if len(pairs) and left:  # truncated: ask again for the rest
                todo = left + todo
            elif left:
                break  # the peer has none of them
        return got_total, {c for c in missing if not self.store.has(c)}

    async def catch_up(self, peer: str) -> int:
        """Walk ``peer``'s lists for every followed target and ingest what we lack."""
        if peer in self._catching_up:
            return 0
        self._catching_up.add(peer)
        started = time.monotonic()
        total = 0
        try:
            for target in list(self.follow):
                if not self.store.has(target):
                    got, _ = await self.pull(peer, [target])
                    total += got
                if target not in self.chains:
                    continue
                counts = (await self.heads(peer, target))["counts"]
                for kind in CATCH_UP_ORDER:
                    key = (peer, target, kind)
                    if key in self._walked and self._walked[key] == counts.get(kind):
                        continue  # nothing new there since the last walk (lists only grow)
                    total += await self._catch_up_kind(peer, target, kind)
                    self._walked[key] = counts.get(kind)
            self.stats["sync_catch_ups_total"] += 1
            if total:
                log.info("caught up with %s: %d objects in %.2fs", peer, total,
                         time.monotonic() - started)
            self.synced_with.add(peer)
            for listener in list(self.on_synced):
                listener(peer)
        except ProtocolNotSupported:
            log.debug("%s does not serve %s: not a poi node", peer, PROTOCOL)
        except RequestError as exc:
            log.info("catch-up with %s stopped: %s", peer, exc)
        finally:
            self._catching_up.discard(peer)
        return total

    async def _catch_up_kind(self, peer: str, target: CID, kind: str) -> int:
        key = (peer, target, kind)
        cursor = self._cursors.get(key, 0)
        total = 0
        while True:
            cids, nxt, more = await self.list(peer, target, kind, cursor)
            want = self._lacking(cids)
            if want:
                got, missing = await self.pull(peer, want)
                total += got
                if missing:
                    await self.fetch(missing, prefer=peer, timeout=REQUEST_TIMEOUT_S)
                if self._lacking(want):
                    raise RequestError(f"{peer} listed {len(self._lacking(want))} {kind} it "
                                       "did not serve")
            cursor = nxt
            self._cursors[key] = cursor
            if not more:
                return total

    async def fetch(self, cids: Iterable[CID], *, prefer: str | None = None,
                    timeout: float = FETCH_TIMEOUT_S) -> None:
        """Return once every CID in ``cids`` is in the DAG (fetching its own missing
        dependencies too); raise FetchError after ``timeout`` seconds."""
        wanted = set(cids)
        deadline = trio.current_time() + timeout
        extra: set[CID] = set()
        while True:
            absent = {c for c in wanted if not self.store.has(c)}
            if not absent:
                return
            if any(self.store.is_pending(c) for c in absent):
                extra |= set(self.store.missing())
            ask = self._lacking(absent | extra)
            extra = {c for c in extra if not self.store.has(c)}
            progress = False
            for peer in self._peer_order(prefer):
                ask = self._lacking(ask)
                if not ask:
                    break
                try:
                    with trio.move_on_at(deadline):
                        got, missing = await self.pull(peer, ask[:MAX_GET_CIDS])
                        extra |= missing
                        progress = progress or got > 0
                except RequestError as exc:
                    log.debug("fetch from %s failed: %s", peer, exc)
            if trio.current_time() >= deadline:
                self.stats["sync_fetch_failures_total"] += 1
                left = {c for c in wanted if not self.store.has(c)}
                raise FetchError(f"{len(left)} object(s) not delivered by any peer within "
                                 f"{timeout}s (first: {sorted(left)[0]})")
            if not progress:
                await trio.sleep(min(0.5, max(0.0, deadline - trio.current_time())))

    def _peer_order(self, prefer: str | None) -> list[str]:
        peers = self.p2p.connected_peers()
        random.shuffle(peers)
        if prefer in peers:
            peers.remove(prefer)
            peers.insert(0, prefer)
        return peers

    # -- background loops -------------------------------------------------------------------------
    def missing(self, cids: set[CID], peer: str | None) -> None:
        """Ingest's hook: pending objects wait for ``cids``; fetch them soon."""
        self._missing_hint = peer
        self._missing_wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._peer_events, nursery)
            nursery.start_soon(self._anti_entropy, nursery)
            nursery.start_soon(self._resolve_missing)

    async def _peer_events(self, nursery: trio.Nursery) -> None:
        with self.p2p.open_peer_events() as events:
            async for event in events:
                if event.kind is PeerEventKind.CONNECTED:
                    nursery.start_soon(self.catch_up, event.peer_id)
                else:
                    self.synced_with.discard(event.peer_id)

    async def _anti_entropy(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(self.anti_entropy_s * random.uniform(0.8, 1.2))
            peers = self.p2p.connected_peers()
            for peer in random.sample(peers, min(ANTI_ENTROPY_PEERS, len(peers))):
                nursery.start_soon(self.catch_up, peer)
            if self.store.pending_count():
                self._missing_wake.set()

    async def _resolve_missing(self) -> None:
        while True:
            await self._missing_wake.wait()
            self._missing_wake = trio.Event()
            now = trio.current_time()
            wanted = set(self.store.missing())
            for cid in [c for c in self._retry if c not in wanted]:
                del self._retry[cid]  # stored meanwhile, or its waiters were evicted
            missing = {c for c in wanted if self._retry.get(c, (0.0, 0.0))[0] <= now}
            if not missing:
                continue
            try:
                await self.fetch(missing, prefer=self._missing_hint, timeout=REQUEST_TIMEOUT_S)
            except FetchError as exc:
                log.info("missing dependencies not fetched yet: %s", exc)
            now = trio.current_time()
            for cid in missing:
                if self.store.has(cid):
                    self._retry.pop(cid, None)
                else:
                    delay = min(self._retry.get(cid, (0.0, MISSING_RETRY_S[0] / 2))[1] * 2,
                                MISSING_RETRY_S[1])
                    self._retry[cid] = (now + delay, delay)
