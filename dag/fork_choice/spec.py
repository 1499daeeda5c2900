"""The reference fork choice and finality: the rules of docs/PROTOCOL.md, "Fork choice and
finality", written as small pure functions over a plain `Store`.

Every decision is recomputed from scratch from the events the store holds, so each function can
be checked against the text line by line. It is slow on purpose (linear in the DAG and the
verdicts per head); nodes run `proto_array.ProtoArrayForkChoice`, which must agree with this
module after every event (tests/test_fork_choice_equivalence.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dag.fork_choice.model import (
    ACCEPT_DENOMINATOR,
    ACCEPT_NUMERATOR,
    DEFAULT_QUORUM_PPM,
    FAILURE_VERDICTS,
    FINALITY_DENOMINATOR,
    FINALITY_NUMERATOR,
    PPM,
    REJECT_DENOMINATOR,
    REJECT_NUMERATOR,
    Attestation,
    Commit,
    CommitId,
    HeadUpdate,
    InvalidInputError,
    UnknownCommitError,
    Verdict,
    VerdictClaim,
    VerifierId,
    check_attestation,
    check_commit,
    check_quorum_ppm,
    check_stakes,
)

# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestVote:
    """A verifier's counted head vote: the one from its highest-numbered attestation."""

    seq: int
    head: CommitId
    attestation_id: bytes


@dataclass(frozen=True, slots=True)
class LatestVerdict:
    """A verifier's counted verdict on one commit: from its highest-numbered attestation that
    carries one (re-measurements may refine the ratio; the result can never change)."""

    seq: int
    claim: VerdictClaim


@dataclass
class Store:
    """Everything fork choice has been told. `commits` is in arrival order, so parents come
    before children; `finalized` is the latest final commit; `head` the last computed head."""

    genesis: CommitId
    quorum_ppm: int
    stakes: dict[VerifierId, int]
    commits: dict[CommitId, tuple[CommitId, ...]]
    finalized: CommitId
    head: CommitId
    verdicts: dict[CommitId, dict[VerifierId, LatestVerdict]] = field(default_factory=dict)
    latest_votes: dict[VerifierId, LatestVote] = field(default_factory=dict)
    equivocators: set[VerifierId] = field(default_factory=set)


def get_genesis_store(
    genesis: CommitId, stakes: Mapping[VerifierId, int], quorum_ppm: int = DEFAULT_QUORUM_PPM
) -> Store:
    """§ Fork choice and finality / Inputs: the genesis is accepted, final and the head."""
    check_stakes(stakes)
    check_quorum_ppm(quorum_ppm)
    return Store(
        genesis=genesis,
        quorum_ppm=quorum_ppm,
        stakes=dict(stakes),
        commits={genesis: ()},
        finalized=genesis,
        head=genesis,
    )


# ---------------------------------------------------------------------------------------------
# Stake
# ---------------------------------------------------------------------------------------------


def get_stake(store: Store, verifier: VerifierId) -> int:
    """§ Stake: a verifier's stake in the current snapshot; an equivocator's counts as zero, for
    good."""
    if verifier in store.equivocators:
        return 0
    return store.stakes.get(verifier, 0)


def get_total_active_stake(store: Store) -> int:
    """§ Stake: total active stake is the sum of the stakes of verifiers not ejected."""
    return sum(get_stake(store, verifier) for verifier in store.stakes)


# ---------------------------------------------------------------------------------------------
# Threshold predicates (integers only)
# ---------------------------------------------------------------------------------------------


def is_accepted_by_verdicts(
    improved_stake: int, verdict_stake: int, total_stake: int, quorum_ppm: int
) -> bool:
    """§ Acceptance: `improved` carries at least 2/3 of the verdict stake, at least the quorum of
    total active stake, and is not nothing."""
    return (
        improved_stake > 0
        and ACCEPT_DENOMINATOR * improved_stake >= ACCEPT_NUMERATOR * verdict_stake
        and PPM * improved_stake >= quorum_ppm * total_stake
    )


def is_rejected_by_verdicts(failure_stake: int, verdict_stake: int) -> bool:
    """§ Rejection: failure verdicts carry strictly more than 1/3 of the verdict stake."""
    return REJECT_DENOMINATOR * failure_stake > REJECT_NUMERATOR * verdict_stake


def has_finality_weight(weight: int, total_stake: int) -> bool:
    """§ Finality: at least 2/3 of total active stake stands behind the commit (and some does)."""
    return weight > 0 and FINALITY_DENOMINATOR * weight >= FINALITY_NUMERATOR * total_stake


# ---------------------------------------------------------------------------------------------
# The DAG and its first-parent tree
# ---------------------------------------------------------------------------------------------


def get_ancestors(store: Store, commit: CommitId) -> set[CommitId]:
    """§ Finality: a commit and all its ancestors through every parent."""
    seen = {commit}
    todo = [commit]
    while todo:
        for parent in store.commits[todo.pop()]:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def get_final_commits(store: Store) -> set[CommitId]:
    """§ Finality: the final commits are the latest finalized commit and all its ancestors."""
    return get_ancestors(store, store.finalized)


def get_tree_parent(store: Store, commit: CommitId) -> CommitId | None:
    """§ The fork-choice tree: a commit's tree parent is its first parent."""
    parents = store.commits[commit]
    return parents[0] if parents else None


def get_subtree(store: Store, root: CommitId) -> list[CommitId]:
    """§ The fork-choice tree: `root` and its descendants along first-parent edges, parents
    first."""
    members = {root}
    for commit in store.commits:
        parent = get_tree_parent(store, commit)
        if parent in members:
            members.add(commit)
    return [commit for commit in store.commits if commit in members]


def get_tree_children(store: Store, root: CommitId) -> dict[CommitId, list[CommitId]]:
    """§ The fork-choice tree: the first-parent children of every commit under `root`."""
    children: dict[CommitId, list[CommitId]] = {}
    for commit in get_subtree(store, root):
        children[commit] = []
        if commit != root:
            children[store.commits[commit][0]].append(commit)
    return children


def get_first_parent_path(store: Store, ancestor: CommitId, commit: CommitId) -> list[CommitId]:
    """§ The fork-choice tree: the first-parent path from `ancestor` down to `commit`, both
    included; `ancestor` must be a tree ancestor of `commit`."""
    path = [commit]
    while path[-1] != ancestor:
        parent = get_tree_parent(store, path[-1])
        assert parent is not None, "not a tree ancestor"
        path.append(parent)
    return path[::-1]


# ---------------------------------------------------------------------------------------------
# Acceptance and rejection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """Stake behind a commit's verdicts, by kind."""

    verdict_stake: int
    improved_stake: int
    failure_stake: int


def get_tally(store: Store, commit: CommitId) -> Tally:
    """§ Verdicts: the stake of all verdicts on `commit`, of its `improved` verdicts, and of
    its failure verdicts (gate_failed, build_failed, scope_violation)."""
    verdict = improved = failure = 0
    for verifier, latest in store.verdicts.get(commit, {}).items():
        stake = get_stake(store, verifier)
        verdict += stake
        if latest.claim.verdict == Verdict.IMPROVED:
            improved += stake
        if latest.claim.verdict in FAILURE_VERDICTS:
            failure += stake
    return Tally(verdict, improved, failure)


def get_accepted_and_rejected(store: Store) -> tuple[set[CommitId], set[CommitId]]:
    """§ Acceptance, § Rejection: final commits are accepted; otherwise a commit is rejected when
    its verdicts reject it or a parent is rejected, and accepted when all its parents are
    accepted and its verdicts accept it."""
    final = get_final_commits(store)
    total = get_total_active_stake(store)
    accepted: set[CommitId] = set()
    rejected: set[CommitId] = set()
    for commit, parents in store.commits.items():  # parents before children
        if commit in final:
            accepted.add(commit)
            continue
        tally = get_tally(store, commit)
        if is_rejected_by_verdicts(tally.failure_stake, tally.verdict_stake) or any(
            parent in rejected for parent in parents
        ):
            rejected.add(commit)
        elif all(parent in accepted for parent in parents) and is_accepted_by_verdicts(
            tally.improved_stake, tally.verdict_stake, total, store.quorum_ppm
        ):
            accepted.add(commit)
    return accepted, rejected


# ---------------------------------------------------------------------------------------------
# Weight, the tie-break ratio and the head
# ---------------------------------------------------------------------------------------------


def get_weighted_median(entries: Iterable[tuple[int, int]]) -> int | None:
    """§ Tie-break: the lower weighted median of (value, weight) pairs: the smallest value v such
    that twice the weight of the entries with value <= v is at least the total weight. None when
    the total weight is zero."""
    ordered = sorted(entries)
    total = sum(weight for _, weight in ordered)
    if total == 0:
        return None
    running = 0
    for value, weight in ordered:
        running += weight
        if 2 * running >= total:
            return value
    raise AssertionError("unreachable: the running weight reaches the total")


def get_improvement_ratio(store: Store, commit: CommitId) -> int | None:
    """§ Tie-break: the stake-weighted median ratio (ppm) of the `improved` verdicts on `commit`
    measured against its first parent; None when there is none."""
    parents = store.commits[commit]
    return get_weighted_median(
        (latest.claim.ratio_ppm, get_stake(store, verifier))
        for verifier, latest in store.verdicts.get(commit, {}).items()
        if latest.claim.verdict == Verdict.IMPROVED and latest.claim.parent == parents[0]
    )


def get_weights(store: Store) -> dict[CommitId, int]:
    """§ Weight: for every commit in the finalized commit's subtree, the stake of the verifiers
    whose latest head vote has it as a first-parent ancestor-or-self. Votes for commits outside
    that subtree count for none of them."""
    weights = dict.fromkeys(get_subtree(store, store.finalized), 0)
    for verifier, vote in store.latest_votes.items():
        if vote.head in weights:
            for commit in get_first_parent_path(store, store.finalized, vote.head):
                weights[commit] += get_stake(store, verifier)
    return weights


def get_fork_choice_key(
    weight: int, ratio_ppm: int | None, commit: CommitId
) -> tuple[int, bool, int, bytes]:
    """§ Fork choice: the order in which siblings compete, best first: greater weight, then a
    lower improvement ratio (an unmeasured commit after every measured one), then the lower id."""
    return (-weight, ratio_ppm is None, ratio_ppm or 0, commit)


def get_head(store: Store) -> CommitId:
    """§ Fork choice: from the finalized commit, step to the best accepted tree child until
    there is none."""
    accepted, _ = get_accepted_and_rejected(store)
    weights = get_weights(store)
    children = get_tree_children(store, store.finalized)
    head = store.finalized
    while candidates := [child for child in children[head] if child in accepted]:
        head = min(
            candidates,
            key=lambda child: get_fork_choice_key(
                weights[child], get_improvement_ratio(store, child), child
            ),
        )
    return head


def get_newly_finalized(store: Store, head: CommitId) -> list[CommitId]:
    """§ Finality: the commits after the finalized one on the canonical chain, up to the deepest
    that has 2/3 of total active stake behind it (weight never grows along the chain)."""
    weights = get_weights(store)
    total = get_total_active_stake(store)
    newly: list[CommitId] = []
    for commit in get_first_parent_path(store, store.finalized, head)[1:]:
        if not has_finality_weight(weights[commit], total):
            break
        newly.append(commit)
    return newly


def get_canonical_chain(store: Store) -> list[CommitId]:
    """§ Fork choice: the canonical chain is the first-parent path from the genesis to the
    last computed head."""
    return get_first_parent_path(store, store.genesis, store.head)


# ---------------------------------------------------------------------------------------------
# Handlers: each event changes the store
# ---------------------------------------------------------------------------------------------


def on_commit(store: Store, commit: Commit) -> None:
    """§ Inputs: a commit is added after all its parents; adding it again changes nothing."""
    if check_commit(commit, store.genesis, store.commits.get):
        store.commits[commit.id] = commit.parents


def on_equivocation(store: Store, verifier: VerifierId) -> None:
    """§ Equivocation: the verifier's stake leaves every tally, weight and total, for good."""
    store.equivocators.add(verifier)


def on_attestation(store: Store, attestation: Attestation) -> None:
    """§ Verdicts, § Head votes, § Equivocation: an equivocator's attestations are ignored; an
    attestation with the verifier's latest sequence number but another id, or a verdict on a
    commit with another result than the verifier's earlier verdict on it, is equivocation;
    otherwise the verdict and the head vote each count when their attestation's sequence number
    is the highest yet (for that commit, for the head)."""
    check_attestation(attestation, store.commits.get)
    verifier = attestation.verifier
    if verifier in store.equivocators:
        return
    latest = store.latest_votes.get(verifier)
    if (
        latest is not None
        and attestation.seq == latest.seq
        and attestation.attestation_id != latest.attestation_id
    ):
        on_equivocation(store, verifier)
        return
    claim = attestation.verdict
    if claim is not None:
        verdicts = store.verdicts.setdefault(claim.commit, {})
        previous = verdicts.get(verifier)
        if previous is not None and previous.claim.verdict != claim.verdict:
            on_equivocation(store, verifier)
            return
        if previous is None or attestation.seq > previous.seq:
            verdicts[verifier] = LatestVerdict(attestation.seq, claim)
    if latest is None or attestation.seq > latest.seq:
        store.latest_votes[verifier] = LatestVote(
            attestation.seq, attestation.head, attestation.attestation_id
        )


def on_stakes(store: Store, stakes: Mapping[VerifierId, int]) -> None:
    """§ Stake: a new epoch's snapshot replaces the previous one."""
    check_stakes(stakes)
    store.stakes = dict(stakes)


def update_head(store: Store) -> HeadUpdate:
    """§ Fork choice, § Finality: compute the head, then finalize the deepest commit of the
    canonical chain that 2/3 of total active stake stands behind."""
    head = get_head(store)
    newly = get_newly_finalized(store, head)
    if newly:
        store.finalized = newly[-1]
    store.head = head
    return HeadUpdate(head, store.finalized, tuple(newly))


# ---------------------------------------------------------------------------------------------
# The same rules behind the `ForkChoice` interface
# ---------------------------------------------------------------------------------------------


class SpecForkChoice:
    """The reference behind the `ForkChoice` interface, for tests and benchmarks."""

    def __init__(
        self,
        genesis: CommitId,
        stakes: Mapping[VerifierId, int],
        quorum_ppm: int = DEFAULT_QUORUM_PPM,
    ) -> None:
        self.store = get_genesis_store(genesis, stakes, quorum_ppm)

    def add_commit(self, commit: Commit) -> None:
        on_commit(self.store, commit)

    def add_attestation(self, attestation: Attestation) -> None:
        on_attestation(self.store, attestation)

    def mark_equivocator(self, verifier: VerifierId) -> None:
        on_equivocation(self.store, verifier)

    def set_stakes(self, stakes: Mapping[VerifierId, int]) -> None:
        on_stakes(self.store, stakes)

    def update_head(self) -> HeadUpdate:
        return update_head(self.store)

    @property
    def genesis(self) -> CommitId:
        return self.store.genesis

    @property
    def head(self) -> CommitId:
        return self.store.head

    @property
    def finalized(self) -> CommitId:
        return self.store.finalized

    def total_active_stake(self) -> int:
        return get_total_active_stake(self.store)

    def equivocators(self) -> frozenset[VerifierId]:
        return frozenset(self.store.equivocators)

    def _known(self, commit: CommitId) -> CommitId:
        if commit not in self.store.commits:
            raise UnknownCommitError(commit)
        return commit

    def is_accepted(self, commit: CommitId) -> bool:
        return self._known(commit) in get_accepted_and_rejected(self.store)[0]

    def is_rejected(self, commit: CommitId) -> bool:
        return self._known(commit) in get_accepted_and_rejected(self.store)[1]

    def is_final(self, commit: CommitId) -> bool:
        return self._known(commit) in get_final_commits(self.store)

    def accepted(self) -> frozenset[CommitId]:
        return frozenset(get_accepted_and_rejected(self.store)[0])

    def rejected(self) -> frozenset[CommitId]:
        return frozenset(get_accepted_and_rejected(self.store)[1])

    def improvement_ratio(self, commit: CommitId) -> int | None:
        return get_improvement_ratio(self.store, self._known(commit))

    def weight(self, commit: CommitId) -> int:
        weights = get_weights(self.store)
        if self._known(commit) not in weights:
            raise InvalidInputError("weights exist only under the finalized commit")
        return weights[commit]

    def weights(self) -> dict[CommitId, int]:
        return get_weights(self.store)

    def canonical_chain(self) -> list[CommitId]:
        return get_canonical_chain(self.store)
