"""Ingest: every object a node receives goes through here, whatever carried it.

Gossip bundles, HTTP submissions, sync responses and the node's own objects all end the same
way: the tiered checks of node/validation.py (trusted own objects skip signatures), then one
store transaction (`Store.put_many`, in a thread), then each stored object — and everything it
released from pending — is applied to its target's `TargetChain` in store order, the chains
update their heads once per batch, and the roles hear about it. What arrives before its
dependencies is held as *pending* by the store (durably) and the node fetches what is missing by
sync (``on_missing``).

Writes go through one queue and are group-committed (`Ingest.admit`), so chains see objects in
exactly the store's order.

Gossip messages are validated concurrently and in no particular order (py-libp2p starts a task
per message, and trio does not keep their start order), so a bundle may be judged before the
bundle it extends (an attestation chain split over several messages, a commit and its parent).
Before admitting a gossip bundle, ingest therefore waits for dependencies that are *in flight*
(objects of another message being validated right now) and, for at most `ORDER_GRACE_S`, for
dependencies that have not shown up yet; only what is still missing after that is held as
pending (IGNOREd: not forwarded, fetched by sync).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from dag.fork_choice import ForkChoiceError
from dag.store import PutResult, Store, StoredObject, StoreError, dependencies
from protocol.cid import CID
from protocol.constants import MAX_BLOB_BYTES
from protocol.errors import ProtocolError
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Commit,
    Evidence,
    Ruling,
    Target,
    Tree,
    decode_object,
)

from .bundle import BundleError, decode_bundle
from .chain import TargetChain
from .p2p import MAX_GOSSIP_BYTES
from .topics import MAX_GOSSIP_BUNDLE_OBJECTS
from .validation import (
    ACCEPTED,
    MAX_ITEM_BYTES,
    MAX_TOPIC_ITEM_BYTES,
    Action,
    Check,
    Item,
    SignatureVerifier,
    bundle_check,
    decode_items,
    first_reject,
    ignore,
    named_content,
    placement_problem,
    reject,
    size_problem,
    target_of,
    time_problem,
)

log = logging.getLogger("poi.ingest")

ORDER_GRACE_S = 0.5
"""How long a gossip bundle waits for dependencies that are neither stored nor in flight."""
INFLIGHT_WAIT_S = 5.0
"""How long it waits for dependencies another message is being validated with."""
GROUP_COMMIT_OBJECTS = 8192
"""At most this many objects per store transaction when admissions are grouped (bounds the
latency a small admission queued behind a burst can see)."""


@dataclass
class SubmitResult:
    """What became of each submitted object (HTTP ``POST /v1/commits``, the proposer).

    ``accepted``: CIDs now held durably (in the DAG, or pending until their dependencies
    arrive); ``rejected``: (index, reason) of invalid objects; ``ignored``: (index, reason) of
    valid objects that changed nothing (already stored, a verifier without stake...).
    """

    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": list(self.accepted),
                "rejected": [[i, r] for i, r in self.rejected],
                "ignored": [[i, r] for i, r in self.ignored]}


@dataclass
class Admitted:
    """What one store transaction did."""

    stored: list[StoredObject] = field(default_factory=list)
    """Objects now in the DAG (the put ones and everything they released), in store order."""
    pending: list[CID] = field(default_factory=list)
    missing: set[CID] = field(default_factory=set)
    duplicates: int = 0


class StoreWriteError(StoreError):
    """The store could not write an admission (the node's disk, not the peer, is at fault)."""


@dataclass
class _Admission:
    """One caller's objects waiting for a store transaction (`Ingest.admit`)."""

    objects: list[StoredObject]
    source: str | None
    admitted: Admitted = field(default_factory=Admitted)
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None


ObjectListener = Callable[[StoredObject], None]
MissingListener = Callable[[set[CID], str | None], None]


class Ingest:
    """Checks, stores and applies objects for every followed target of one node."""

    def __init__(self, store: Store, chains: dict[CID, TargetChain], follow: set[CID], *,
                 verifier: SignatureVerifier, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self.chains = chains
        self.follow = follow
        self.verifier = verifier
        self.clock_ms = clock_ms
        self.object_listeners: list[ObjectListener] = []
        """Called with each object applied to a chain (roles: on_commit, on_attestation...)."""
        self.head_listeners: list[Callable[[TargetChain], None]] = []
        self.on_missing: MissingListener | None = None
        """Called with the CIDs pending objects wait for, and the peer that sent them."""
        self.on_target: Callable[[Target], None] | None = None
        """Called when a followed target's object is stored (the runtime makes its chain)."""
        self.on_admitted: Callable[[Admitted], None] | None = None
        """Called after every store transaction with what it did."""
        self.wants_events: Callable[[], bool] = lambda: True
        """Whether chain events for each commit and attestation have a listener (formatting
        them costs more than applying an attestation)."""
        self.trace: Callable[[str, Any], None] | None = None
        """Diagnostics: called with ("commit", cid) per stored commit and ("admitted", n)
        per store transaction (see POI_TRACE_FILE in node/runtime.py)."""
        self._admissions: deque[_Admission] = deque()
        self._queued: set[CID] = set()
        self._writing = False
        self._inflight: dict[CID, trio.Event] = {}
        self._arrival = trio.Event()
        self._stakers: dict[CID, tuple[tuple[int, CID], frozenset[bytes]]] = {}
        self.stats: dict[str, int] = defaultdict(int)

    # -- the checks -------------------------------------------------------------------------------
    def targets(self) -> dict[CID, Target]:
        return {cid: chain.target for cid, chain in self.chains.items()}

    def stakers(self, chain: TargetChain) -> frozenset[bytes]:
        """Keys with stake in ``chain``'s current snapshot (cached per epoch and finality)."""
        key = (chain.epoch, chain.finalized)
        cached = self._stakers.get(chain.cid)
        if cached is None or cached[0] != key:
            cached = (key, frozenset(chain.ledger.stakes_at(chain.epoch)))
            self._stakers[chain.cid] = cached
        return cached[1]

    async def check(self, datas: Sequence[bytes], *, topic_target: CID | None = None,
                    topic_kind: str | None = None, gossip: bool = False,
                    stop_at_reject: bool = False,
                    on_decoded: Callable[[list[Item]], None] | None = None) -> list[Item]:
        """Run every tier on a bundle's objects; each Item says ACCEPT, REJECT or IGNORE.

        ``gossip`` adds the gossip-only filters (attestations of verifiers without stake, or of
        known equivocators, are not relayed). ``stop_at_reject`` skips the signature tier once
        any object is invalid (the whole gossip bundle is rejected anyway).
        """
        now = self.clock_ms()
        max_item = MAX_TOPIC_ITEM_BYTES[topic_kind] if topic_kind else MAX_BLOB_BYTES
        items = decode_items(datas, max_item_bytes=max_item)
        content = named_content(i.obj for i in items if i.obj is not None)
        first_reject(items, lambda it: placement_problem(
            it.obj, follow=self.follow, topic_target=topic_target, topic_kind=topic_kind,
            content=content))
        seen: set[CID] = set()
        for item in items:
            if item.ok:
                if item.cid in seen:
                    item.check = reject("the same object twice in one bundle")
                seen.add(item.cid)
        targets = self.targets()
        first_reject(items, lambda it: time_problem(it.obj, targets, now))
        self._store_checks(items, gossip)
        if on_decoded is not None:
            on_decoded(items)
        if stop_at_reject and any(i.check.action is Action.REJECT for i in items):
            return items
        todo = [item for item in items if item.ok]
        problems = await self.verifier.verify([item.obj for item in todo])
        for item, problem in zip(todo, problems, strict=True):
            if problem:
                item.check = reject(problem)
        return items

    def _store_checks(self, items: Sequence[Item], gossip: bool) -> None:
        """Dedupe against the store, and the checks that need what the store knows."""
        bundle_commits = {i.obj.cid: i.obj for i in items if isinstance(i.obj, Commit)}
        equivocators: dict[CID, frozenset[bytes]] = {}
        candidates = [item.obj.cid for item in items if item.ok]
        stored = self.store.has_many(candidates)
        held = self.store.has_many([c for c in candidates if c not in stored], pending=True)
        for item in items:
            if not item.ok:
                continue
            obj = item.obj
            if obj.cid in stored:
                item.check = ignore("already stored")
                continue
            if obj.cid in held:
                item.check = ignore("already held, waiting for its dependencies")
                continue
            if not isinstance(obj, Attestation):
                continue
            problem = self._verdict_problem(obj, bundle_commits)
            if problem:
                item.check = reject(problem)
                continue
            if not gossip:
                continue
            chain = self.chains.get(obj.target)
            if chain is None:
                continue
            if obj.target not in equivocators:
                equivocators[obj.target] = chain.fork_choice.equivocators()
            if obj.verifier in equivocators[obj.target]:
                item.check = ignore("attestation of a known equivocator")
            elif obj.verifier not in self.stakers(chain):
                item.check = ignore("attestation of a verifier without stake")

    def _verdict_problem(self, att: Attestation, bundle_commits: dict[CID, Commit]
                         ) -> str | None:
        verdict = att.verdict
        if verdict is None:
            return None
        commit = bundle_commits.get(verdict.commit)
        if commit is not None:
            parents = list(commit.parents)
        elif self.store.has(verdict.commit):
            parents = self.store.parents(verdict.commit)
            if not parents:
                return f"verdict on {verdict.commit}, which is not a commit"
        else:
            return None  # checked by fork choice when the commit arrives
        if verdict.parent not in parents:
            return f"verdict measured against {verdict.parent}, not a parent of its commit"
        return None

    # -- storing and applying ---------------------------------------------------------------------
    async def admit(self, objects: Sequence[StoredObject], source: str | None = None, *,
                    on_queued: Callable[[], None] | None = None) -> Admitted:
        """Store ``objects`` durably and apply what got stored to the chains.

        Group commit: admissions that queue up while a store transaction is running are
        written together in the next one (one commit and one thread hop per transaction, not
        per bundle). Each admission returns only once its own transaction is on disk, and the
        chains see the objects in exactly the store's order. Objects queued here count as
        present for the dependency wait of later bundles (`_absent`): they are written first,
        in the same transaction or an earlier one, so a bundle that extends another no longer
        waits for the other's transaction to finish before it can join the queue.
        ``on_queued`` is called once they are queued."""
        if not objects:
            return Admitted()
        request = _Admission(list(objects), source)
        self._admissions.append(request)
        self._queued.update(obj.cid for obj in request.objects)
        if on_queued is not None:
            on_queued()
        if not self._writing:
            self._writing = True
            try:
                # Shielded: the admissions of other bundles ride on this transaction.
                with trio.CancelScope(shield=True):
                    while self._admissions:
                        await self._write(self._take_admissions())
            finally:
                self._writing = False
        await request.done.wait()
        if request.error is not None:
            raise StoreWriteError(str(request.error)) from request.error
        admitted = request.admitted
        if admitted.missing:
            missing = {c for c in admitted.missing if not self.store.is_pending(c)}
            if missing and self.on_missing is not None:
                self.on_missing(missing, source)
        return admitted

    def _take_admissions(self) -> list[_Admission]:
        """The queued admissions for one transaction: in order, up to `GROUP_COMMIT_OBJECTS`
        objects (always at least one admission)."""
        taken: list[_Admission] = []
        count = 0
        while self._admissions and (not taken or count + len(self._admissions[0].objects)
                                    <= GROUP_COMMIT_OBJECTS):
            request = self._admissions.popleft()
            taken.append(request)
            count += len(request.objects)
        return taken

    async def _write(self, batch: list[_Admission]) -> None:
        objects = [obj for request in batch for obj in request.objects]
        try:
            results: list[PutResult] = await trio.to_thread.run_sync(
                self.store.put_many, objects)
        except Exception as exc:  # the store could not write (disk full, I/O error)
            log.error("store transaction of %d objects failed: %s", len(objects), exc)
            for request in batch:
                request.error = exc
                request.done.set()
            return
        finally:
            self._queued.difference_update(obj.cid for obj in objects)
        at = 0
        for request in batch:
            mine = results[at:at + len(request.objects)]
            at += len(request.objects)
            admitted = request.admitted
            for obj, result in zip(request.objects, mine, strict=True):
                if result.status == "stored":
                    admitted.stored.append(obj)
                elif result.status == "pending":
                    admitted.pending.append(obj.cid)
                    admitted.missing.update(result.missing)
                else:
                    admitted.duplicates += 1
                for cid in result.released:
                    released = self.store.get(cid)
                    if released is not None:
                        admitted.stored.append(released)
            self.stats["ingest_stored_total"] += len(admitted.stored)
            self.stats["ingest_pending_total"] += len(admitted.pending)
            self.stats["ingest_duplicates_total"] += admitted.duplicates
            try:
                self._apply(admitted.stored)
                if self.on_admitted is not None:
                    self.on_admitted(admitted)
                if self.trace is not None:
                    for obj in admitted.stored:
                        if isinstance(obj, Commit):
                            self.trace("commit", str(obj.cid))
                    self.trace("admitted", len(admitted.stored))
            finally:
                request.done.set()
        self.stats["ingest_transactions_total"] += 1

    def _apply(self, objects: Iterable[StoredObject]) -> None:
        touched: dict[CID, TargetChain] = {}
        applied: list[StoredObject] = []
        notify = self.wants_events()
        for obj in objects:
            if isinstance(obj, Target):
                if obj.cid in self.follow and obj.cid not in self.chains and self.on_target:
                    self.on_target(obj)
                continue
            if isinstance(obj, Blob) or not hasattr(obj, "target"):
                continue
            chain = self.chains.get(obj.target)
            if chain is None:
                continue
            try:
                if isinstance(obj, Commit):
                    chain.on_commit(obj, notify=notify)
                elif isinstance(obj, Attestation):
                    chain.on_attestation(obj, notify=notify)
                elif isinstance(obj, Evidence):
                    chain.on_evidence(obj)
                elif isinstance(obj, Challenge):
                    chain.on_challenge(obj)
                elif isinstance(obj, Ruling):
                    chain.on_ruling(obj)
                else:
                    continue  # stake transactions wait in the store for a proposer
            except ForkChoiceError as exc:
                self.stats["ingest_unusable_total"] += 1
                log.warning("stored %s %s cannot count in fork choice: %s", obj.TYPE, obj.cid,
                            exc)
                continue
            except Exception:
                self.stats["ingest_apply_errors_total"] += 1
                log.exception("applying %s %s to its chain failed", obj.TYPE, obj.cid)
                continue
            touched[chain.cid] = chain
            applied.append(obj)
        for chain in touched.values():
            self.update(chain)
        for obj in applied:
            for listener in list(self.object_listeners):
                try:
                    listener(obj)
                except Exception:
                    log.exception("object listener failed on %s", obj.cid)

    def update(self, chain: TargetChain) -> None:
        """Recompute ``chain``'s head; tell the head listeners when it moved."""
        before = chain.head
        try:
            chain.update()
        except Exception:
            log.exception("fork-choice update of %s failed", chain.cid)
            return
        if chain.head != before:
            log.info("head of %s is now %s", _short(chain.cid), chain.head)
            for listener in list(self.head_listeners):
                try:
                    listener(chain)
                except Exception:
                    log.exception("head listener failed")

    # -- the ways in ------------------------------------------------------------------------------
    async def gossip(self, topic: str, target: CID, kind: str, peer: str, data: bytes) -> Check:
        """Judge, store and apply one gossip bundle; the Check decides forwarding."""
        self.stats["ingest_gossip_messages_total"] += 1
        try:
            datas = decode_bundle(data, max_bytes=MAX_GOSSIP_BYTES)
        except BundleError as exc:
            return self._count(reject(str(exc)))
        if len(datas) > MAX_GOSSIP_BUNDLE_OBJECTS:
            return self._count(reject(f"{len(datas)} objects in one gossip bundle (at most "
                                      f"{MAX_GOSSIP_BUNDLE_OBJECTS})"))
        flying: list[CID] = []
        try:
            items = await self.check(datas, topic_target=target, topic_kind=kind, gossip=True,
                                     stop_at_reject=True,
                                     on_decoded=lambda items: flying.extend(self._fly(items)))
            verdict = bundle_check(items)
            if verdict.action is not Action.ACCEPT:
                return self._count(verdict)
            usable = [item.obj for item in items if item.ok]
            await self._await_dependencies(usable)
            admitted = await self.admit(usable, source=peer,
                                        on_queued=lambda: self._land(flying))
        finally:
            self._land(flying)
        if admitted.pending and not any(not isinstance(o, Tree | Blob)
                                        for o in admitted.stored):
            return self._count(ignore(f"{len(admitted.pending)} object(s) held until their "
                                      "dependencies arrive (fetching)"))
        self.stats["ingest_gossip_objects_total"] += len(usable)
        return self._count(ACCEPTED)

    def _fly(self, items: Sequence[Item]) -> list[CID]:
        """Mark a bundle's acceptable objects as in flight (others may wait for them)."""
        cids = [item.cid for item in items
                if item.ok and item.cid is not None and item.cid not in self._inflight]
        if cids:
            landed = trio.Event()  # one per bundle: set when the whole bundle is done
            for cid in cids:
                self._inflight[cid] = landed
            self._arrival.set()
            self._arrival = trio.Event()
        return cids

    def _land(self, cids: Iterable[CID]) -> None:
        for cid in cids:
            event = self._inflight.pop(cid, None)
            if event is not None:
                event.set()

    def _absent(self, objects: Sequence[StoredObject]) -> set[CID]:
        own = {obj.cid for obj in objects}
        deps = {dep for obj in objects for dep in dependencies(obj)} - own - self._queued
        return deps - self.store.has_many(deps, pending=True)

    async def _await_dependencies(self, objects: Sequence[StoredObject]) -> None:
        """Wait for dependencies in flight, and briefly for ones not seen yet (see module)."""
        grace_end = trio.current_time() + ORDER_GRACE_S
        waited: set[CID] = set()
        while True:
            absent = self._absent(objects)
            if not absent:
                return
            flying = {c: self._inflight[c] for c in absent
                      if c in self._inflight and c not in waited}
            if flying:
                self.stats["ingest_reordered_total"] += 1
                waited.update(flying)
                with trio.move_on_after(INFLIGHT_WAIT_S):
                    for event in flying.values():
                        await event.wait()
                continue
            if trio.current_time() >= grace_end:
                return
            with trio.move_on_at(grace_end):
                await self._arrival.wait()

    def _count(self, check: Check) -> Check:
        self.stats[f"ingest_gossip_{check.action.value}_total"] += 1
        if check.action is Action.REJECT:
            log.info("gossip rejected: %s", check.reason)
        elif check.action is Action.IGNORE:
            level = logging.DEBUG if check.reason.startswith("already") else logging.INFO
            log.log(level, "gossip ignored (not forwarded): %s", check.reason)
        return check

    async def submit(self, datas: Sequence[bytes]) -> tuple[SubmitResult, list[StoredObject]]:
        """Check each object on its own, store the valid ones; return the result and what was
        admitted (for the caller to gossip)."""
        items = await self.check(list(datas))
        result = SubmitResult()
        usable: list[StoredObject] = []
        for item in items:
            if item.check.action is Action.REJECT:
                result.rejected.append((item.index, item.check.reason))
            elif item.check.action is Action.IGNORE:
                result.ignored.append((item.index, item.check.reason))
            else:
                usable.append(item.obj)
        self.stats["ingest_submit_rejected_total"] += len(result.rejected)
        admitted = await self.admit(usable)
        pending = set(admitted.pending)
        for obj in usable:
            result.accepted.append(str(obj.cid))
            if obj.cid in pending:
                log.info("submitted %s is held until %d missing dependencies arrive",
                         obj.cid, len(admitted.missing))
        return result, usable

    async def own(self, objects: Sequence[StoredObject]) -> Admitted:
        """The node's own signed objects: stored and applied without re-checking signatures."""
        return await self.admit(list(objects))

    async def synced(self, pairs: Sequence[tuple[CID, bytes]], peer: str | None
                     ) -> tuple[Admitted, list[str]]:
        """Objects a peer sent by sync (each already matched against the CID we asked for).

        The CID's codec says what each is (raw: a blob), so no guessing; the other tiers are
        gossip's (the clock allowance included: an honest peer never holds a future-dated
        object). Returns what was admitted and the problems, one per bad object.
        """
        problems: list[str] = []
        objects: list[StoredObject] = []
        targets = self.targets()
        now = self.clock_ms()
        for cid, data in pairs:
            try:
                obj = Blob(data) if cid.codec == "raw" else decode_object(data)
            except ProtocolError as exc:
                problems.append(f"{cid}: {exc}")
                continue
            type_name = "blob" if isinstance(obj, Blob) else obj.TYPE
            problem = size_problem(data, MAX_ITEM_BYTES.get(type_name, MAX_BLOB_BYTES),
                                   type_name)
            target = None if isinstance(obj, Blob) else target_of(obj)
            if problem is None and target is not None and target not in self.follow:
                problem = f"{type_name} of target {target}, which this node does not follow"
            problem = problem or time_problem(obj, targets, now)
            if problem:
                problems.append(f"{cid}: {problem}")
                continue
            if not self.store.has(cid):
                objects.append(obj)
        sigs = await self.verifier.verify(objects)
        good = []
        for obj, problem in zip(objects, sigs, strict=True):
            if problem:
                problems.append(f"{obj.cid}: {problem}")
            else:
                good.append(obj)
        self.stats["ingest_sync_bad_total"] += len(problems)
        admitted = await self.admit(good, source=peer)
        self.stats["ingest_sync_objects_total"] += len(good)
        return admitted, problems


def _short(cid: CID) -> str:
    text = str(cid)
    return text[:8] + "…" + text[-6:]
