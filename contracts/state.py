"""The fold: the ledger state as a pure function of the finalized chain and the sets of known
evidence, challenges, rulings and attestations (docs/PROTOCOL.md, "Contracts", §The fold).

`compute_state` is the reference: it folds everything from the genesis. `Ledger` is what a node
holds: it takes the same inputs one at a time, in any valid delivery order, and keeps the state
it last computed, continuing the fold when a commit is appended and recomputing it (lazily, on
the next query) when an input lands before the point the fold has reached. Both run the same
rules (`process_position`), so they agree by construction; tests/test_contracts_property.py
checks that delivery order never matters.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from contracts.challenges import (
    ChallengeRecord,
    ChallengeStatus,
    challenge_status,
    committee_for,
    get_challenge_anchor_index,
    process_challenge,
)
from contracts.errors import ChainOrderError, WrongTargetError
from contracts.ledger import (
    LedgerState,
    TxResult,
    get_commit_epoch,
    get_genesis_state,
    process_epoch,
    process_stake_tx,
)
from contracts.params import DEFAULT_PARAMS, ContractParams
from contracts.rewards import process_commit_rewards
from contracts.slashing import (
    get_evidence_anchor,
    get_evidence_key,
    process_evidence,
)
from protocol.cid import CID
from protocol.objects import Attestation, Challenge, Commit, Evidence, Ruling, Target


class LedgerInputs:
    """Everything the fold reads, indexed: the finalized chain (positions 0 = genesis, 1…n = the
    final commits) with its epochs, and the sets of evidence, challenges, rulings and verdict
    attestations. Each `add_*` returns the earliest chain position whose processing the new
    input changes, or None when it changes none yet (a duplicate, a challenge whose anchor is
    not final, evidence anchored beyond the chain, ...)."""

    def __init__(self, target: Target, params: ContractParams = DEFAULT_PARAMS) -> None:
        self.target = target
        self.params = params
        self.chain: list[Commit] = []
        self.epochs: list[int] = [0]
        self.cids: list[CID] = [target.cid]
        self.position: dict[CID, int] = {target.cid: 0}
        self.evidence: dict[CID, Evidence] = {}
        self.counted: dict[bytes, Evidence] = {}
        self._due: list[Evidence] | None = []
        self._due_anchors: list[int] = []
        self.challenges: dict[CID, Challenge] = {}
        self.challenges_by_anchor: dict[CID, dict[CID, Challenge]] = {}
        self.rulings: dict[CID, dict[CID, Ruling]] = {}
        self.verdicts: dict[CID, dict[CID, Attestation]] = {}

    # -- inputs ---------------------------------------------------------------------------------
    def _check_target(self, what: str, target: CID) -> None:
        if target != self.target.cid:
            raise WrongTargetError(f"{what} belongs to target {target}, not {self.target.cid}")

    def add_commit(self, commit: Commit) -> int | None:
        """The next final commit: it must extend the chain (first parent = the last final
        commit). The same commit again changes nothing."""
        self._check_target("commit", commit.target)
        if commit.cid in self.position:
            return None
        if commit.parents[0] != self.cids[-1]:
            raise ChainOrderError(
                f"final commit {commit.cid} has first parent {commit.parents[0]}, but the last "
                f"final commit is {self.cids[-1]}: apply final commits in chain order")
        self.chain.append(commit)
        self.cids.append(commit.cid)
        self.epochs.append(get_commit_epoch(self.target, commit, self.epochs[-1]))
        self.position[commit.cid] = len(self.cids) - 1
        return None  # appended after everything processed so far

    def add_evidence(self, evidence: Evidence) -> int | None:
        self._check_target("evidence", evidence.target)
        if evidence.cid in self.evidence:
            return None
        self.evidence[evidence.cid] = evidence
        best = self.counted.get(evidence.offender)
        if best is not None and get_evidence_key(best) < get_evidence_key(evidence):
            return None
        self.counted[evidence.offender] = evidence
        self._due = None
        return self.anchor_position(get_evidence_anchor(evidence))

    def add_challenge(self, challenge: Challenge) -> int | None:
        self._check_target("challenge", challenge.target)
        if challenge.cid in self.challenges:
            return None
        self.challenges[challenge.cid] = challenge
        self.challenges_by_anchor.setdefault(challenge.anchor, {})[challenge.cid] = challenge
        return self.position.get(challenge.anchor)

    def add_ruling(self, ruling: Ruling) -> int | None:
        self._check_target("ruling", ruling.target)
        known = self.rulings.setdefault(ruling.challenge, {})
        if ruling.cid in known:
            return None
        known[ruling.cid] = ruling
        challenge = self.challenges.get(ruling.challenge)
        return None if challenge is None else self.position.get(challenge.anchor)

    def add_attestation(self, attestation: Attestation) -> int | None:
        """Only attestations with a verdict matter to the ledger (§Rewards)."""
        self._check_target("attestation", attestation.target)
        verdict = attestation.verdict
        if verdict is None:
            return None
        known = self.verdicts.setdefault(verdict.commit, {})
        if attestation.cid in known:
            return None
        known[attestation.cid] = attestation
        position = self.position.get(verdict.commit)
        return None if position == 0 else position

    # -- lookups --------------------------------------------------------------------------------
    def anchor_position(self, epoch: int) -> int | None:
        """§The fold: evidence anchored at `epoch` is applied at the first position whose epoch
        is ≥ it (before that position's commit); None while the chain has not reached it."""
        position = bisect_left(self.epochs, epoch)
        return position if position < len(self.epochs) else None

    def evidence_due(self, position: int) -> list[Evidence]:
        """The counted evidence applied at `position`, in (anchor epoch, CID) order."""
        if self._due is None:
            self._due = sorted(self.counted.values(), key=get_evidence_key)
            self._due_anchors = [get_evidence_anchor(e) for e in self._due]
        low = bisect_right(self._due_anchors, self.epochs[position - 1]) if position else 0
        high = bisect_right(self._due_anchors, self.epochs[position])
        return self._due[low:high]

    def challenges_at(self, position: int) -> list[Challenge]:
        """The challenges anchored at the commit of `position`, in CID order."""
        found = self.challenges_by_anchor.get(self.cids[position], {})
        return [found[cid] for cid in sorted(found)]

    def accused(self) -> frozenset[bytes]:
        return frozenset(self.counted)


def process_position(state: LedgerState, inputs: LedgerInputs, position: int) -> None:
    """§The fold, one chain position: first the counted evidence anchored in
    (previous position's epoch, this position's epoch], each at its anchor epoch, in (anchor,
    CID) order; then the final commit (rewards, then its stake transactions in inclusion
    order); then the challenges anchored at it, in CID order (escrow, and settlement if the
    rulings have a majority). Position 0 is the genesis: evidence anchored at epoch 0 only."""
    params = inputs.params
    for evidence in inputs.evidence_due(position):
        anchor = get_evidence_anchor(evidence)
        process_epoch(state, anchor)
        process_evidence(state, evidence, anchor, params)
    epoch = inputs.epochs[position]
    if position > 0:
        commit = inputs.chain[position - 1]
        process_epoch(state, epoch)
        process_commit_rewards(state, commit, epoch,
                               inputs.verdicts.get(commit.cid, {}).values(), params)
        for index, tx in enumerate(commit.stake_txs):
            status = process_stake_tx(state, tx, epoch, params)
            state.tx_results[(commit.cid, index)] = TxResult(tx.cid, tx.account, status)
        state.head, state.height = commit.cid, position
    for challenge in inputs.challenges_at(position):
        canonical = get_challenge_anchor_index(inputs.epochs, challenge.attestation) == position
        process_challenge(state, challenge, epoch, canonical,
                          inputs.rulings.get(challenge.cid, {}).values(), params)


def compute_state(target: Target, chain: Sequence[Commit], *,
                  evidence: Iterable[Evidence] = (), challenges: Iterable[Challenge] = (),
                  rulings: Iterable[Ruling] = (), attestations: Iterable[Attestation] = (),
                  params: ContractParams = DEFAULT_PARAMS) -> LedgerState:
    """§The fold, the reference: the ledger state of `target` given its finalized chain
    (the final commits after the genesis, in chain order) and the sets of known evidence,
    challenges, rulings and attestations (their order is irrelevant)."""
    inputs = LedgerInputs(target, params)
    for commit in chain:
        inputs.add_commit(commit)
    for item in evidence:
        inputs.add_evidence(item)
    for item in challenges:
        inputs.add_challenge(item)
    for item in rulings:
        inputs.add_ruling(item)
    for item in attestations:
        inputs.add_attestation(item)
    state = get_genesis_state(target)
    for position in range(len(inputs.epochs)):
        process_position(state, inputs, position)
    state.accused = inputs.accused()
    return state


class Ledger:
    """The incremental ledger a node holds (§Driving the ledger).

    `apply_final_commit` takes final commits in chain order; every other `apply_*` takes its
    object in any order, before or after the commits it refers to, any number of times. Each
    `apply_*` returns at once; the state is brought up to date when it is next read, and is the
    same as `compute_state` over the same inputs whatever the delivery order.

    Callers validate objects and check signatures first (the ledger does neither); an object of
    another target raises `WrongTargetError`, a commit that does not extend the finalized chain
    `ChainOrderError`, and the ledger is then unchanged.
    """

    def __init__(self, target: Target, params: ContractParams = DEFAULT_PARAMS) -> None:
        self._inputs = LedgerInputs(target, params)
        self._state: LedgerState | None = None
        self._through = -1
        """The last chain position `_state` has processed."""

    # -- inputs ---------------------------------------------------------------------------------
    def _changed(self, position: int | None) -> None:
        if position is not None and position <= self._through:
            self._state = None

    def apply_final_commit(self, commit: Commit) -> None:
        """On finality: each commit of `HeadUpdate.newly_finalized`, oldest first."""
        self._changed(self._inputs.add_commit(commit))

    def apply_final_commits(self, commits: Iterable[Commit]) -> None:
        for commit in commits:
            self.apply_final_commit(commit)

    def apply_evidence(self, evidence: Evidence) -> None:
        """On valid evidence (signatures checked), whenever it arrives."""
        self._changed(self._inputs.add_evidence(evidence))

    def apply_challenge(self, challenge: Challenge) -> None:
        """On a valid challenge (signatures checked), whenever it arrives."""
        self._changed(self._inputs.add_challenge(challenge))

    def apply_ruling(self, ruling: Ruling) -> None:
        """On a valid ruling (signature checked), whenever it arrives."""
        self._changed(self._inputs.add_ruling(ruling))

    def apply_attestation(self, attestation: Attestation) -> None:
        """On every valid attestation (vote-only ones are ignored): verdicts decide rewards."""
        self._changed(self._inputs.add_attestation(attestation))

    # -- the state ------------------------------------------------------------------------------
    @property
    def state(self) -> LedgerState:
        """The current state (read-only: the ledger keeps updating this object)."""
        inputs = self._inputs
        if self._state is None:
            self._state = get_genesis_state(inputs.target)
            self._through = -1
        for position in range(self._through + 1, len(inputs.epochs)):
            process_position(self._state, inputs, position)
        self._through = len(inputs.epochs) - 1
        self._state.accused = inputs.accused()
        return self._state

    @property
    def target(self) -> Target:
        return self._inputs.target

    @property
    def params(self) -> ContractParams:
        return self._inputs.params

    @property
    def finalized(self) -> CID:
        """The last final commit applied (the target's CID at genesis)."""
        return self._inputs.cids[-1]

    @property
    def epoch(self) -> int:
        """The ledger's clock: the epoch of the last final commit."""
        return self._inputs.epochs[-1]

    # -- queries --------------------------------------------------------------------------------
    def stakes_at(self, epoch: int) -> dict[bytes, int]:
        """At each epoch start: `fork_choice.set_stakes(ledger.stakes_at(epoch))`."""
        return self.state.stakes_at(epoch)

    def accused(self) -> frozenset[bytes]:
        """Every offender of known evidence (for `fork_choice.mark_equivocator` on restart)."""
        return self._inputs.accused()

    def challenge_anchor(self, attestation: Attestation) -> CID | None:
        """The anchor a challenge of `attestation` must name: the first final commit with an
        epoch greater than the attestation's; None until the finalized chain has one."""
        index = get_challenge_anchor_index(self._inputs.epochs, attestation)
        return None if index is None else self._inputs.cids[index]

    def committee_for(self, challenge: Challenge | CID) -> tuple[bytes, ...]:
        return committee_for(challenge, self.state)

    def challenge_status(self, challenge: Challenge | CID) -> ChallengeStatus:
        return challenge_status(challenge, self.state)

    def challenge_record(self, challenge: Challenge | CID) -> ChallengeRecord | None:
        cid = challenge if isinstance(challenge, CID) else challenge.cid
        return self.state.challenges.get(cid)
