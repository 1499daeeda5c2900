"""One target's chain state in a node: the store's objects fed to fork choice and the ledger.

A node holds one `TargetChain` per target it follows. The network layer (gossip, sync, HTTP
POST) validates an object, puts it in the store, then hands it here; this module never does I/O
beyond reading the store, never checks signatures (its callers did) and never reads the clock
(the caller passes ``now_ms``). Everything the HTTP API shows about a commit (status, stake for
and against, the canonical chain with its speed-ups) is answered here, so the API, the devnet
summary and the CLI all read the same numbers.

Ordering: the store releases an object only after what it depends on, so `on_commit` always
sees a commit's parents and `on_attestation` the commits it names; `load` replays a store in
that order after a restart and reaches the same state as a node that saw everything live.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from contracts import Ledger
from dag.fork_choice import Attestation as VoteInput
from dag.fork_choice import Commit as CommitInput
from dag.fork_choice import HeadUpdate, ProtoArrayForkChoice, VerdictClaim
from dag.fork_choice import Verdict as VerdictKind
from dag.index import DagIndex
from dag.store import Store
from protocol.cid import CID
from protocol.constants import PPM
from protocol.objects import Attestation, Challenge, Commit, Evidence, Ruling, Target
from protocol.objects.attestation import REJECTING_RESULTS


class CommitStatus(enum.StrEnum):
    """What the network currently says about a commit (docs/PROTOCOL.md §7)."""

    PENDING = "pending"
    """Known, not yet accepted nor rejected (verdicts still arriving)."""
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FINAL = "final"


@dataclass(frozen=True)
class Tally:
    """The latest verdict stake on one commit, by the stakes fork choice uses now."""

    improved: int
    against: int
    """Stake of `gate_failed`, `build_failed` and `scope_violation` verdicts."""
    neutral: int
    """Stake of `not_improved` and `timeout` verdicts."""
    verifiers: int

    @property
    def total(self) -> int:
        return self.improved + self.against + self.neutral


@dataclass(frozen=True)
class ChainStep:
    """One commit of the canonical chain with its verified speed-up.

    ``ratio_ppm`` is the stake-weighted median ratio candidate/parent of the accepted verdicts
    (lower is faster); ``cumulative_ppm`` is the product of the ratios from the target to here
    (rounded, never below 1 ppm) and ``speedup`` its inverse, the speed-up over the baseline,
    computed from the unrounded product: a long chain's product goes below 1 ppm (0.95 per step
    does after 270 steps), where a ppm integer would divide by zero.
    """

    commit: CID
    ratio_ppm: int | None
    cumulative_ppm: int
    final: bool
    speedup: float = 1.0


Listener = Callable[[str, dict], None]
"""Receives (event kind, payload) for the event stream: commit, attestation, head, final,
slashing."""
MAX_LOG_SPEEDUP = 700.0
"""Speed-ups are reported up to e^700 (≈ 10^304), so they stay finite JSON numbers."""


def vote_input(attestation: Attestation) -> VoteInput:
    """An attestation reduced to what fork choice reads."""
    verdict = attestation.verdict
    claim = None if verdict is None else VerdictClaim(
        commit=verdict.commit, parent=verdict.parent, verdict=VerdictKind(verdict.result),
        ratio_ppm=verdict.ratio_ppm)
    return VoteInput(attestation_id=attestation.cid, verifier=attestation.verifier,
                     seq=attestation.seq, head=attestation.head, verdict=claim)


class TargetChain:
    """Fork choice, the DAG index and the ledger of one target, fed from the store."""

    def __init__(self, store: Store, target: Target) -> None:
        self.store = store
        self.target = target
        self.cid: CID = target.cid
        self.index = DagIndex(self.cid)
        self.ledger = Ledger(target)
        self.epoch = 0
        self.fork_choice = ProtoArrayForkChoice(self.cid, self.ledger.stakes_at(0),
                                                target.quorum_ppm)
        self.listeners: list[Listener] = []
        self._head: CID = self.cid
        self._finalized: CID = self.cid
        self._slashed: set[tuple[bytes, str, bytes]] = set()
        self.view_version = 0
        """Bumped whenever what the HTTP API shows of this target may have changed (a commit,
        a verdict, evidence, a challenge or ruling, an equivocation, a new epoch, a new head or
        finality) but not for a head vote that moves neither: answers built from the chain can
        be cached under it, so a stream of votes does not make every query rebuild them."""

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, store: Store, target: Target, now_ms: int) -> TargetChain:
        """Rebuild from the store (the order the store admitted things in) after a restart."""
        chain = cls(store, target)
        chain.tick(now_ms)
        for commit_cid in store.commits_of(target.cid):
            chain.on_commit(store.get_typed(commit_cid, Commit), notify=False)
        for _, att_cid in store.attestations_of(target.cid):
            chain.on_attestation(store.get_typed(att_cid, Attestation), notify=False)
        for cid in store.evidence_of(target.cid):
            chain.on_evidence(store.get_typed(cid, Evidence), notify=False)
        for cid in store.challenges_of(target.cid):
            challenge = store.get_typed(cid, Challenge)
            chain.on_challenge(challenge, notify=False)
            for ruling_cid in store.rulings_on(cid):
                chain.on_ruling(store.get_typed(ruling_cid, Ruling), notify=False)
        chain.update(notify=False)
        return chain

    # -- events in ----------------------------------------------------------------------------
    def on_commit(self, commit: Commit, *, notify: bool = True) -> None:
        """A commit the store admitted (its parents are known)."""
        if commit.cid in self.index:
            return
        self.index.add(commit.cid, commit.parents)
        self.fork_choice.add_commit(CommitInput(commit.cid, tuple(commit.parents)))
        self.view_version += 1
        if notify:
            self._emit("commit", {"cid": str(commit.cid),
                                  "parents": [str(p) for p in commit.parents],
                                  "author": commit.author.hex()})

    def on_attestation(self, attestation: Attestation, *, notify: bool = True) -> None:
        """A validated attestation whose commits are known. Raises `ForkChoiceError` for one
        that can never count (the caller rejects it); an equivocation is recorded, not
        raised."""
        equivocators = self.fork_choice.equivocator_count
        self.fork_choice.add_attestation(vote_input(attestation))
        self.ledger.apply_attestation(attestation)
        if attestation.verdict is not None or \
                self.fork_choice.equivocator_count != equivocators:
            self.view_version += 1
        if notify:
            verdict = attestation.verdict
            self._emit("attestation", {
                "cid": str(attestation.cid), "verifier": attestation.verifier.hex(),
                "seq": attestation.seq, "head": str(attestation.head),
                "commit": None if verdict is None else str(verdict.commit),
                "result": None if verdict is None else verdict.result})

    def on_evidence(self, evidence: Evidence, *, notify: bool = True) -> None:
        """Valid evidence: the offender's weight leaves fork choice at once."""
        self.fork_choice.mark_equivocator(evidence.offender)
        self.ledger.apply_evidence(evidence)
        self.view_version += 1
        if notify:
            self._emit("evidence", {"cid": str(evidence.cid),
                                    "offender": evidence.offender.hex()})
        self._report_slashes(notify)

    def on_challenge(self, challenge: Challenge, *, notify: bool = True) -> None:
        self.ledger.apply_challenge(challenge)
        self.view_version += 1
        if notify:
            self._emit("challenge", {"cid": str(challenge.cid)})

    def on_ruling(self, ruling: Ruling, *, notify: bool = True) -> None:
        self.ledger.apply_ruling(ruling)
        self.view_version += 1
        self._report_slashes(notify)

    def tick(self, now_ms: int) -> bool:
        """Move to the epoch of ``now_ms``: fork choice takes that epoch's stake snapshot.
        Returns whether the epoch changed."""
        epoch = max(0, self.target.epoch_at(now_ms))
        if epoch == self.epoch:
            return False
        self.epoch = epoch
        self.fork_choice.set_stakes(self.ledger.stakes_at(epoch))
        self.view_version += 1
        return True

    def update(self, *, notify: bool = True) -> HeadUpdate:
        """Recompute the head; feed newly final commits to the ledger in chain order."""
        update = self.fork_choice.update_head()
        if update.newly_finalized:
            self.ledger.apply_final_commits(
                self.store.get_typed(cid, Commit) for cid in update.newly_finalized)
            # Finality can change the stake snapshot of the current epoch (bonds, slashes).
            self.fork_choice.set_stakes(self.ledger.stakes_at(self.epoch))
        if notify and update.head != self._head:
            self._emit("head", {"head": str(update.head)})
        if notify and update.finalized != self._finalized:
            self._emit("final", {"finalized": str(update.finalized),
                                 "newly": [str(c) for c in update.newly_finalized]})
        if (update.head, update.finalized) != (self._head, self._finalized):
            self.view_version += 1
        self._head, self._finalized = update.head, update.finalized
        self._report_slashes(notify)
        return update

    # -- queries ------------------------------------------------------------------------------
    @property
    def head(self) -> CID:
        return self._head

    @property
    def finalized(self) -> CID:
        return self._finalized

    def knows(self, cid: CID) -> bool:
        return cid in self.index

    def status(self, commit: CID) -> CommitStatus:
        if self.fork_choice.is_final(commit):
            return CommitStatus.FINAL
        if self.fork_choice.is_rejected(commit):
            return CommitStatus.REJECTED
        if self.fork_choice.is_accepted(commit):
            return CommitStatus.ACCEPTED
        return CommitStatus.PENDING

    def tally(self, commit: CID) -> Tally:
        """Each verifier's latest verdict on ``commit`` (highest seq), weighted by stake now;
        equivocators count for nothing, as in fork choice."""
        latest: dict[bytes, Attestation] = {}
        for cid in self.store.attestations_on(commit):
            att = self.store.get_typed(cid, Attestation)
            if att.verdict is None or att.verdict.commit != commit:
                continue
            seen = latest.get(att.verifier)
            if seen is None or att.seq > seen.seq:
                latest[att.verifier] = att
        stakes = self.ledger.stakes_at(self.epoch)
        excluded = self.fork_choice.equivocators()
        improved = against = neutral = 0
        for verifier, att in latest.items():
            stake = 0 if verifier in excluded else stakes.get(verifier, 0)
            if att.verdict.result == "improved":
                improved += stake
            elif att.verdict.result in REJECTING_RESULTS:
                against += stake
            else:
                neutral += stake
        return Tally(improved, against, neutral, len(latest))

    def verified_ratio(self, commit: CID) -> int | None:
        """The stake-weighted median ratio of the verdicts fork choice counted (ppm), once
        the commit is accepted; None before, and for a rejected commit: there the only
        `improved` verdicts are those the network overruled (a lying verifier's claim on a
        gate-failing commit must not read as a verified speed-up)."""
        if not (self.fork_choice.is_accepted(commit) or self.fork_choice.is_final(commit)):
            return None
        return self.fork_choice.improvement_ratio(commit)

    def canonical_chain(self) -> list[ChainStep]:
        """Target → head along the canonical chain, each step with its verified ratio."""
        steps: list[ChainStep] = []
        log_product = 0.0  # a sum of logs: a product of thousands of ratios would underflow
        for cid in self.fork_choice.canonical_chain():
            if cid == self.cid:
                continue
            ratio = self.verified_ratio(cid)
            if ratio is not None:
                log_product += math.log(ratio / PPM)
            steps.append(ChainStep(
                cid, ratio, max(1, round(PPM * math.exp(log_product))),
                self.fork_choice.is_final(cid),
                math.exp(min(-log_product, MAX_LOG_SPEEDUP))))
        return steps

    def speedup(self) -> float:
        """Baseline time over head time along the canonical chain (1.0 at genesis)."""
        steps = self.canonical_chain()
        return steps[-1].speedup if steps else 1.0

    # -- events out ---------------------------------------------------------------------------
    def _report_slashes(self, notify: bool) -> None:
        for slash in self.ledger.state.slashes:
            key = (slash.offender, slash.reason, bytes(slash.source))
            if key in self._slashed:
                continue
            self._slashed.add(key)
            if notify:
                self._emit("slashing", {"verifier": slash.offender.hex(), "amount": slash.amount,
                                        "reason": slash.reason, "source": str(slash.source)})

    def _emit(self, kind: str, payload: dict) -> None:
        payload = {"target": str(self.cid), **payload}
        for listener in list(self.listeners):
            listener(kind, payload)

