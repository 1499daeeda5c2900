"""The verifier role: evaluate commits, attest, vote heads, report equivocation, challenge false
gate claims and serve on challenge committees (DESIGN §5–7, docs/PROTOCOL.md).

One `VerifierRole` per followed target. The node's runtime feeds it what it validated and
stored (`on_commit`, `on_attestation`, `on_challenge`, `on_head_change`; plain calls from the
trio loop that only record work and return) and runs `run()` in its nursery. `run()` owns three
loops:

- the **worker**: one job at a time, blocking work (sandboxed builds, gates, benchmarks) in a
  thread. Jobs by priority: committee rulings (they settle challenges), then gate re-runs of
  disputed attestations, then commit evaluations in arrival order.
- **head votes**: after the chain head changes, a vote-only attestation for the new head, at
  most one per ``head_vote_interval_s`` and always after the last change of a burst, so a
  commit accepted after the last verdicts still gains weight and can become final.
- **maintenance** (each second, and whenever the head or the challenges change): committee duty
  for challenges whose anchor became final, and issuing confirmed challenges once their anchor
  exists. Finality can move without the head moving, so this also polls.

Rules this role follows (docs/PROTOCOL.md §Verifier role):

- A commit is evaluated once: it is skipped when this key's slashing-protection record or the
  store already holds a verdict of ours on it (restart-safe), and when it is already final.
  Its tree and blobs (and its first parent's) are fetched first; a tree CID that names
  something other than a tree is a ``scope_violation``. The gate seed is fresh and random.
- Evidence: an attestation that conflicts with another stored one of the same verifier (same
  seq, or another result on the same commit) becomes `Evidence`, once per offender.
- Auto-challenge: when another verifier's verdict claims the gate passed where ours says it
  failed, or failed where ours says it passed, the gate is re-run with *their* revealed seed;
  only if that run still contradicts them (a definite pass or fail, never a timeout) is a
  challenge issued, with bond ``MIN_CHALLENGE_BOND``, nonce 0 (re-signing after a restart gives
  the same challenge), and the anchor `Ledger.challenge_anchor` names once it exists. At most
  one live challenge of ours per offender; none once the offender was slashed for a false gate
  claim (a second one could not slash it again).
- Committee duty: for an open challenge whose committee holds our key, the gate is re-run with
  the attestation's seed and a `Ruling` says whether it passed (a gate that does not build or
  does not finish within its limit did not pass; a timeout is retried once first).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Protocol

import trio

from contracts import MIN_CHALLENGE_BOND, ChallengeStatus
from dag.store import Store
from node.chain import CommitStatus, TargetChain
from protocol.cid import CID
from protocol.constants import GATE_SEED_BYTES
from protocol.keys import SigningKey
from protocol.objects import (
    GATE_FAILED,
    IMPROVED,
    MEASURED_RESULTS,
    NOT_IMPROVED,
    SCOPE_VIOLATION,
    TIMEOUT,
    Attestation,
    Challenge,
    Commit,
    Evidence,
    Ruling,
    Tree,
    Verdict,
    conflict,
    decode_object,
)
from verifier.attest import AttestationSigner, SlashingProtectionError
from verifier.candidates import CandidateError, workspace_from_store
from verifier.pipeline import EvaluationError, Pipeline

from . import byzantine

log = logging.getLogger("poi.verifier")

HEAD_VOTE_INTERVAL_S = 2.0
"""Least time between two vote-only attestations."""
HEAD_VOTE_SETTLE_S = 0.25
"""A head change waits this long for the rest of its burst before a vote is signed."""
MAINTENANCE_INTERVAL_S = 1.0
"""How often challenges are re-checked when nothing wakes the maintenance loop."""
FETCH_TIMEOUT_S = 10.0
"""Longest wait for peers to deliver what one job needs (the worker waits meanwhile)."""
FETCH_RETRY_S = 15.0
"""A job whose objects could not be fetched is retried this much later; others go first."""
MAX_FETCH_ATTEMPTS = 4
"""After this many failed fetches a job is dropped until the node restarts (withheld objects
must not stall the worker for long)."""

_NOT_CHALLENGEABLE = (ChallengeStatus.INVALID_ANCHOR, ChallengeStatus.BOND_TOO_SMALL,
                      ChallengeStatus.UNFUNDED, ChallengeStatus.NO_COMMITTEE)
_LIVE = (ChallengeStatus.WAITING_ANCHOR, ChallengeStatus.OPEN)


def gate_claim(result: str | None) -> bool | None:
    """What a verdict result says about the gate: passed (measured results), failed
    (``gate_failed``), or None (it never ran: build failure, scope violation, timeout)."""
    if result in MEASURED_RESULTS:
        return True
    if result == GATE_FAILED:
        return False
    return None


class VerifierNode(Protocol):
    """What the role uses of the node (node/runtime.py's Node)."""

    store: Store
    key: SigningKey

    async def publish_own(self, objects: list) -> Any: ...

    async def fetch(self, cids: list[CID]) -> None: ...


class FetchFailed(Exception):
    """The objects a job needs could not be had from peers (yet)."""


class VerifierRole:
    """The verifier of one target (see the module docstring for what it does and when)."""

    def __init__(self, node: VerifierNode, target_chain: TargetChain, pipeline: Pipeline | None,
                 signer: AttestationSigner, *, mode: str = byzantine.HONEST,
                 pairs: int | None = None, head_vote_interval_s: float = HEAD_VOTE_INTERVAL_S,
                 head_vote_settle_s: float = HEAD_VOTE_SETTLE_S,
                 maintenance_interval_s: float = MAINTENANCE_INTERVAL_S,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.node = node
        self.chain = target_chain
        self.target = target_chain.target
        self.pipeline = pipeline
        self.signer = signer
        self.key: SigningKey = signer.key
        self.me: bytes = signer.key.public_key
        self.mode = byzantine.normalize_mode(mode)
        if self.mode == byzantine.HONEST and pipeline is None:
            raise ValueError("an honest verifier needs a pipeline")
        self.pairs = pairs or None
        self.head_vote_interval_s = head_vote_interval_s
        self.head_vote_settle_s = head_vote_settle_s
        self.maintenance_interval_s = maintenance_interval_s
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.current: CID | None = None
        """The commit being evaluated now, if any."""

        # Work queues (insertion-ordered dicts: dedupe and FIFO in one).
        self._evaluate: dict[CID, Commit] = {}
        self._disputes: dict[CID, Attestation] = {}
        self._rulings: dict[CID, Challenge] = {}
        self._not_before: dict[CID, float] = {}
        self._attempts: dict[CID, int] = {}
        # Bookkeeping.
        self._own: dict[CID, str] = {}
        self._refused: set[CID] = set()
        self._disputed: set[CID] = set()
        self._to_challenge: dict[CID, Attestation] = {}
        self._mine: dict[CID, Challenge] = {}
        self._challenges: dict[CID, Challenge] = {}
        self._ruled: set[CID] = set()
        self._reported: set[bytes] = set()
        self._gate_cache: dict[tuple[CID, bytes], bool | None] = {}
        self._outbox: list[list] = []
        self._last_head: CID = self.target.cid
        self._last_vote_at = -math.inf
        self._counters = {name: 0 for name in (
            "verify_evaluations", "verify_attestations", "verify_head_votes", "verify_refused",
            "verify_evidence", "verify_disputes", "verify_challenges", "verify_rulings")}
        # Wake-ups (trio objects, created here: on_* may be called before run()).
        self._wake = trio.Event()
        self._head_event = trio.Event()
        self._maintain_event = trio.Event()
        self._outbox_event = trio.Event()
        self._sign_lock = trio.Lock()

    # -- events in (plain calls from the node's trio loop) ------------------------------------
    def on_commit(self, commit: Commit) -> None:
        """A commit the node stored and applied: queue it for evaluation (once)."""
        if commit.target != self.target.cid or commit.cid in self._evaluate:
            return
        if commit.cid in self._refused or self._evaluated(commit.cid):
            return
        self._evaluate[commit.cid] = commit
        self._wake.set()

    def on_attestation(self, attestation: Attestation) -> None:
        """Another verifier's attestation: look for equivocation and contradicted gate claims."""
        if (attestation.target != self.target.cid or attestation.verifier == self.me
                or self.mode != byzantine.HONEST):
            return
        self._check_equivocation(attestation)
        self._check_dispute(attestation)

    def on_challenge(self, challenge: Challenge) -> None:
        """A challenge: serve on its committee when it opens and our key is drawn."""
        if challenge.target != self.target.cid:
            return
        if challenge.challenger == self.me:
            self._mine[challenge.cid] = challenge
        if self.mode == byzantine.HONEST and challenge.cid not in self._ruled:
            self._challenges[challenge.cid] = challenge
            self._maintain_event.set()

    def on_head_change(self) -> None:
        """The chain's head moved: a head vote follows (rate-limited); finality may have moved
        too, so challenges are re-checked."""
        self._head_event.set()
        self._maintain_event.set()

    # -- status -------------------------------------------------------------------------------
    def queue_length(self) -> int:
        return len(self._evaluate) + len(self._disputes) + len(self._rulings)

    def stats(self) -> dict[str, int]:
        """Counters for the node's metrics (all ``verify_*``)."""
        return {**self._counters, "verify_queue_length": self.queue_length()}

    # -- the loops ------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run until cancelled; with ``nursery.start`` it returns once the stored state was
        picked up (see `_recover`)."""
        if self.mode != byzantine.HONEST:
            log.warning("BYZANTINE verifier mode %r on %s: this node misbehaves on purpose "
                        "(devnet only)", self.mode, self.target.name)
        await self._recover()
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._outbox_loop)
            nursery.start_soon(self._head_vote_loop)
            nursery.start_soon(self._maintenance_loop)
            await self._work_loop()

    async def _recover(self) -> None:
        """After a (re)start: re-publish the last attestation we signed if the store lost it
        (a crash between recording and publishing), pick up challenges, and queue the stored
        commits that are neither ours already nor final."""
        store = self.node.store
        tip = self.signer.protection.tip(self.target.cid)
        if tip is not None:
            last = decode_object(tip.data)
            assert isinstance(last, Attestation)
            self._last_head = last.head
            if not store.has(tip.cid):
                log.info("re-publishing attestation %s (seq %d), recorded but not stored",
                         tip.cid, tip.seq)
                await self._publish([last])
        for cid in store.challenges_of(self.target.cid):
            challenge = store.get_typed(cid, Challenge)
            if challenge is not None:
                self.on_challenge(challenge)
        for cid in store.commits_of(self.target.cid):
            if self.chain.status(cid) is CommitStatus.FINAL:
                continue
            if self._evaluated(cid):
                self._look_for_disputes(cid)
                continue
            commit = store.get_typed(cid, Commit)
            if commit is not None:
                self.on_commit(commit)
        self._head_event.set()  # vote if the head moved while we were away

    async def _work_loop(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                wait = self._next_retry_in()
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            try:
                await job()
            except Exception:
                log.exception("verifier job failed on %s", self.target.name)

    def _next_job(self) -> Callable[[], Awaitable[None]] | None:
        now = trio.current_time()
        for queue, run in ((self._rulings, self._rule), (self._disputes, self._dispute),
                           (self._evaluate, self._evaluate_commit)):
            for cid, item in queue.items():
                if self._not_before.get(cid, -math.inf) <= now:
                    del queue[cid]
                    return partial(run, item)
        return None

    def _next_retry_in(self) -> float:
        waiting = [self._not_before[c] for c in (*self._rulings, *self._disputes, *self._evaluate)
                   if c in self._not_before]
        return max(0.0, min(waiting) - trio.current_time()) if waiting else math.inf

    def _defer(self, queue: dict, cid: CID, item: Any, why: str) -> None:
        attempts = self._attempts.get(cid, 0) + 1
        self._attempts[cid] = attempts
        if attempts >= MAX_FETCH_ATTEMPTS:
            log.warning("giving up on %s after %d attempts: %s", cid, attempts, why)
            return
        log.info("%s: %s; retrying in %.0fs", cid, why, FETCH_RETRY_S)
        self._not_before[cid] = trio.current_time() + FETCH_RETRY_S
        queue[cid] = item

    async def _outbox_loop(self) -> None:
        """Publishes what the plain on_* calls produced (evidence)."""
        while True:
            await self._outbox_event.wait()
            self._outbox_event = trio.Event()
            batch, self._outbox = self._outbox, []
            for objects in batch:
                await self._publish(objects)

    async def _publish(self, objects: list) -> None:
        """Publish our own signed objects; a failure is logged (a recorded attestation that
        never got out is re-published at the next start)."""
        try:
            await self.node.publish_own(objects)
        except Exception:
            log.exception("publishing %s failed", ", ".join(str(o.cid) for o in objects))

    # -- evaluating commits ---------------------------------------------------------------------
    async def _evaluate_commit(self, commit: Commit) -> None:
        cid = commit.cid
        if self._evaluated(cid) or self.chain.status(cid) is CommitStatus.FINAL:
            return
        self.current = cid
        try:
            if self.mode == byzantine.LIE:
                await self._attest(self._made_up(commit, IMPROVED))
                return
            if self.mode == byzantine.EQUIVOCATE:
                await self._equivocate(commit)
                return
            try:
                await self._fetch_for(commit)
            except FetchFailed as exc:
                self._defer(self._evaluate, cid, commit, str(exc))
                return
            seed = secrets.token_bytes(GATE_SEED_BYTES)
            verdict = await trio.to_thread.run_sync(self._evaluate_sync, commit, seed,
                                                    abandon_on_cancel=True)
            if verdict is None:
                self._refused.add(cid)
                self._counters["verify_refused"] += 1
                return
            self._counters["verify_evaluations"] += 1
            if await self._attest(verdict) is not None:
                self._own[cid] = verdict.result
                self._look_for_disputes(cid)
        finally:
            self.current = None

    def _evaluate_sync(self, commit: Commit, seed: bytes) -> Verdict | None:
        """The pipeline on ``commit`` against its first parent (in a worker thread). None: no
        honest verdict can be given here (nothing is attested)."""
        assert self.pipeline is not None
        store, parent = self.node.store, commit.parents[0]
        if not isinstance(store.get(commit.tree), Tree):
            log.info("%s: its tree %s is not a tree: scope_violation", commit.cid, commit.tree)
            return self._plain_verdict(commit, SCOPE_VIOLATION, seed)
        try:
            parent_ws = workspace_from_store(store, self.target, parent)
            candidate_ws = workspace_from_store(store, self.target, commit.cid)
            evaluation = self.pipeline.evaluate(parent_ws, candidate_ws, pairs=self.pairs,
                                                gate_seed=seed)
        except (CandidateError, EvaluationError) as exc:
            log.warning("cannot evaluate %s: %s", commit.cid, exc)
            return None
        except Exception:
            log.exception("evaluating %s failed", commit.cid)
            return None
        log.info("%s: %s", commit.cid, evaluation.summary())
        if evaluation.result == GATE_FAILED:
            self._gate_cache[(candidate_ws.tree_cid, seed)] = False
        elif evaluation.measured:
            self._gate_cache[(candidate_ws.tree_cid, seed)] = True
        return evaluation.verdict(commit.cid, parent)

    def _plain_verdict(self, commit: Commit, result: str, seed: bytes) -> Verdict:
        return Verdict(commit=commit.cid, parent=commit.parents[0], result=result, ratio_ppm=0,
                       lo_ppm=0, hi_ppm=0, pairs=0, gate_seed=seed, profile=self.target.profile,
                       toolchain=self._toolchain())

    def _toolchain(self) -> str:
        return self.pipeline.toolchain.id if self.pipeline is not None else "unknown"

    def _made_up(self, commit: Commit, result: str) -> Verdict:
        return byzantine.made_up_verdict(
            commit, profile=self.target.profile, toolchain=self._toolchain(),
            pairs=self.pairs or self.target.stats.pairs, result=result)

    async def _fetch_for(self, commit: Commit) -> None:
        """The trees and blobs of ``commit`` and its first parent (the base tree for the
        target itself), fetched from peers where the store lacks them."""
        store, parent = self.node.store, commit.parents[0]
        trees = [commit.tree]
        if parent == self.target.cid:
            trees.append(self.target.base_tree)
        else:
            await self._ensure([parent])
            parent_commit = store.get_typed(parent, Commit)
            if parent_commit is None:
                raise FetchFailed(f"parent {parent} is not available")
            trees.append(parent_commit.tree)
        await self._ensure(trees)
        blobs: set[CID] = set()
        for cid in trees:
            tree = store.get(cid)
            if isinstance(tree, Tree):
                blobs.update(entry.blob for entry in tree.entries.values())
        await self._ensure(blobs)

    async def _ensure(self, cids: Iterable[CID]) -> None:
        store = self.node.store
        missing = sorted({cid for cid in cids if not store.has(cid)})
        if not missing:
            return
        try:
            with trio.move_on_after(FETCH_TIMEOUT_S) as scope:
                await self.node.fetch(missing)
        except Exception as exc:
            raise FetchFailed(f"fetching {len(missing)} object(s) failed: {exc}") from exc
        if scope.cancelled_caught:
            raise FetchFailed(f"fetching {len(missing)} object(s) took over {FETCH_TIMEOUT_S}s")
        still = [cid for cid in missing if not store.has(cid)]
        if still:
            raise FetchFailed(f"{len(still)} object(s) still missing, e.g. {still[0]}")

    # -- signing ----------------------------------------------------------------------------------
    async def _attest(self, verdict: Verdict | None, *, vote_only: bool = False
                      ) -> Attestation | None:
        """Sign (slashing protection first) and publish the next attestation of our chain.
        ``vote_only``: sign nothing unless the head moved since our last attestation."""
        async with self._sign_lock:
            head = self.chain.head
            if vote_only and head == self._last_head:
                return None
            now = self.clock_ms()
            try:
                attestation = await trio.to_thread.run_sync(partial(
                    self.signer.sign, target=self.target.cid, head=head,
                    epoch=max(0, self.target.epoch_at(now)), time_ms=now, verdict=verdict))
            except SlashingProtectionError as exc:
                log.error("refused to sign: %s", exc)
                return None
            self._last_head = head
            self._counters["verify_attestations"] += 1
            await self._publish([attestation])
        return attestation

    async def _equivocate(self, commit: Commit) -> None:
        async with self._sign_lock:
            head, now = self.chain.head, self.clock_ms()
            first = await trio.to_thread.run_sync(partial(
                self.signer.sign, target=self.target.cid, head=head,
                epoch=max(0, self.target.epoch_at(now)), time_ms=now,
                verdict=self._made_up(commit, IMPROVED)))
            second = byzantine.conflicting_twin(self.key, first,
                                                self._made_up(commit, NOT_IMPROVED))
            self._last_head = head
            self._counters["verify_attestations"] += 2
            await self._publish([first])
            await self._publish([second])

    # -- head votes -----------------------------------------------------------------------------
    async def _head_vote_loop(self) -> None:
        while True:
            await self._head_event.wait()
            self._head_event = trio.Event()
            await trio.sleep(self.head_vote_settle_s)
            delay = self._last_vote_at + self.head_vote_interval_s - trio.current_time()
            if delay > 0:
                await trio.sleep(delay)
            await self._vote()

    async def _vote(self) -> None:
        attestation = await self._attest(None, vote_only=True)
        if attestation is not None:
            self._last_vote_at = trio.current_time()
            self._counters["verify_head_votes"] += 1
            log.debug("head vote %s (seq %d)", attestation.head, attestation.seq)

    # -- equivocation -----------------------------------------------------------------------------
    def _check_equivocation(self, attestation: Attestation) -> None:
        offender = attestation.verifier
        if offender in self._reported or offender in self.chain.ledger.accused():
            return
        store = self.node.store
        candidates = list(store.attestations_at(self.target.cid, offender, attestation.seq))
        if attestation.verdict is not None:
            candidates += store.attestations_on(attestation.verdict.commit)
        for cid in dict.fromkeys(candidates):
            if cid == attestation.cid:
                continue
            other = store.get_typed(cid, Attestation)
            if other is None or other.verifier != offender:
                continue
            reason = conflict(attestation, other)
            if reason is None:
                continue
            evidence = Evidence.create(self.key, attestation, other)
            self._reported.add(offender)
            self._counters["verify_evidence"] += 1
            log.warning("verifier %s equivocated (%s): publishing evidence %s",
                        offender.hex()[:16], reason, evidence.cid)
            self._send([evidence])
            return

    def _send(self, objects: list) -> None:
        self._outbox.append(objects)
        self._outbox_event.set()

    # -- auto-challenge -------------------------------------------------------------------------
    def _own_result(self, commit: CID) -> str | None:
        """The result we signed for ``commit``: our slashing-protection record holds every
        verdict this key ever signed on the target."""
        result = self._own.get(commit)
        if result is None:
            result = self.signer.protection.result_on(self.target.cid, commit)
            if result is not None:
                self._own[commit] = result
        return result

    def _evaluated(self, commit: CID) -> bool:
        """Whether we gave a verdict on ``commit`` already: in our record, or in the store (an
        attestation of ours that came back from the network, e.g. after a lost record)."""
        if self._own_result(commit) is not None:
            return True
        store = self.node.store
        for cid in store.attestations_on(commit):
            att = store.get_typed(cid, Attestation)
            if att is not None and att.verifier == self.me and att.verdict is not None:
                self._own[commit] = att.verdict.result
                return True
        return False

    def _look_for_disputes(self, commit: CID) -> None:
        for cid in self.node.store.attestations_on(commit):
            att = self.node.store.get_typed(cid, Attestation)
            if att is not None and att.verifier != self.me:
                self._check_dispute(att)

    def _check_dispute(self, attestation: Attestation) -> None:
        """Queue a gate re-run with their seed when their gate claim contradicts ours."""
        verdict = attestation.verdict
        if (self.mode != byzantine.HONEST or verdict is None or verdict.gate_passed is None
                or attestation.cid in self._disputed):
            return
        ours = gate_claim(self._own_result(verdict.commit))
        if ours is None or ours == verdict.gate_passed:
            return
        if (attestation.verifier in self.chain.ledger.state.challenge_slashed
                or any(ch.attestation.cid == attestation.cid for ch in self._mine.values())):
            return
        self._disputed.add(attestation.cid)
        self._disputes[attestation.cid] = attestation
        self._wake.set()

    async def _dispute(self, attestation: Attestation) -> None:
        verdict = attestation.verdict
        assert verdict is not None
        commit = self.node.store.get_typed(verdict.commit, Commit)
        if commit is None:
            return
        try:
            await self._fetch_for(commit)
        except FetchFailed as exc:
            self._defer(self._disputes, attestation.cid, attestation, str(exc))
            return
        self._counters["verify_disputes"] += 1
        passed = await self._gate(commit, verdict.gate_seed)
        if passed is None or passed == verdict.gate_passed:
            log.info("attestation %s by %s: the gate with its seed gives %s, as it claims; "
                     "no challenge", attestation.cid, attestation.verifier.hex()[:16], passed)
            return
        log.warning("attestation %s by %s claims the gate %s on %s; re-run with its seed it %s: "
                    "challenging", attestation.cid, attestation.verifier.hex()[:16],
                    "passed" if verdict.gate_passed else "failed", verdict.commit,
                    "passed" if passed else "failed")
        self._to_challenge[attestation.cid] = attestation
        self._maintain_event.set()

    async def _gate(self, commit: Commit, seed: bytes) -> bool | None:
        """The target's gate on ``commit`` with ``seed`` (its objects must be in the store):
        True / False, or None when it (or the build) did not finish. A tree that is not a tree,
        or a candidate that does not build, cannot pass."""
        return await trio.to_thread.run_sync(self._gate_sync, commit, seed,
                                             abandon_on_cancel=True)

    def _gate_sync(self, commit: Commit, seed: bytes) -> bool | None:
        assert self.pipeline is not None
        if not isinstance(self.node.store.get(commit.tree), Tree):
            return False
        try:
            workspace = workspace_from_store(self.node.store, self.target, commit.cid)
        except CandidateError as exc:
            log.warning("cannot re-run the gate of %s: %s", commit.cid, exc)
            return None
        key = (workspace.tree_cid, seed)
        if key in self._gate_cache:
            return self._gate_cache[key]
        try:
            build = self.pipeline.build(workspace)
            if build.status == "ok":
                passed = self.pipeline.gate(build, seed).passed
            else:  # a build that fails cannot pass the gate; one that timed out tells nothing
                passed = None if build.status == TIMEOUT else False
        except Exception:
            log.exception("re-running the gate of %s failed", commit.cid)
            return None
        if passed is not None:
            self._gate_cache[key] = passed
        return passed

    async def _issue_challenges(self) -> None:
        ledger = self.chain.ledger
        for att_cid, attestation in list(self._to_challenge.items()):
            offender = attestation.verifier
            if (offender in ledger.state.challenge_slashed
                    or any(ch.attestation.cid == att_cid for ch in self._mine.values())):
                del self._to_challenge[att_cid]
                continue
            if any(ch.attestation.verifier == offender
                   and ledger.challenge_status(ch) in _LIVE for ch in self._mine.values()):
                continue  # one live challenge per offender
            anchor = ledger.challenge_anchor(attestation)
            if anchor is None:
                continue  # no final commit after the attestation's epoch yet
            bond = max(MIN_CHALLENGE_BOND, ledger.params.min_challenge_bond)
            account = ledger.state.account(self.me)
            del self._to_challenge[att_cid]
            if account.free + account.bonded - account.locked < bond:
                log.warning("cannot challenge %s: a bond of %d exceeds what we hold", att_cid,
                            bond)
                continue
            challenge = Challenge.create(self.key, attestation, anchor=anchor, bond=bond,
                                         nonce=0)
            self._mine[challenge.cid] = challenge
            self._counters["verify_challenges"] += 1
            log.warning("challenging attestation %s by %s (bond %d, anchor %s): %s",
                        att_cid, offender.hex()[:16], bond, anchor, challenge.cid)
            await self._publish([challenge])

    # -- committee duty -------------------------------------------------------------------------
    async def _maintenance_loop(self) -> None:
        while True:
            with trio.move_on_after(self.maintenance_interval_s):
                await self._maintain_event.wait()
            self._maintain_event = trio.Event()
            if self.mode != byzantine.HONEST:
                continue
            self._take_committee_duty()
            await self._issue_challenges()

    def _take_committee_duty(self) -> None:
        ledger = self.chain.ledger
        for cid, challenge in list(self._challenges.items()):
            status = ledger.challenge_status(challenge)
            if status is ChallengeStatus.WAITING_ANCHOR:
                continue
            del self._challenges[cid]
            if (status is ChallengeStatus.OPEN and self.me in ledger.committee_for(challenge)
                    and not self._has_ruled(challenge)):
                self._rulings[cid] = challenge
                self._wake.set()

    def _has_ruled(self, challenge: Challenge) -> bool:
        if challenge.cid in self._ruled:
            return True
        for cid in self.node.store.rulings_on(challenge.cid):
            ruling = self.node.store.get_typed(cid, Ruling)
            if ruling is not None and ruling.member == self.me:
                self._ruled.add(challenge.cid)
                return True
        return False

    async def _rule(self, challenge: Challenge) -> None:
        if self._has_ruled(challenge):
            return
        verdict = challenge.attestation.verdict
        assert verdict is not None
        try:
            await self._ensure([verdict.commit])
            commit = self.node.store.get_typed(verdict.commit, Commit)
            if commit is None:
                raise FetchFailed(f"commit {verdict.commit} is not available")
            await self._fetch_for(commit)
        except FetchFailed as exc:
            self._defer(self._rulings, challenge.cid, challenge, str(exc))
            return
        passed = await self._gate(commit, verdict.gate_seed)
        if passed is None:
            passed = await self._gate(commit, verdict.gate_seed)
        ruling = Ruling.create(self.key, target=self.target.cid, challenge=challenge.cid,
                               gate_passed=passed is True, toolchain=self._toolchain())
        self._ruled.add(challenge.cid)
        self._counters["verify_rulings"] += 1
        log.info("ruling on challenge %s: the gate of %s with the attestation's seed %s",
                 challenge.cid, verdict.commit, "passed" if passed is True else "failed")
        await self._publish([ruling])
