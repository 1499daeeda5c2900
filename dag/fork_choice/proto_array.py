"""The incremental fork choice nodes run: a proto-array (after Lighthouse's `proto_array`).

It decides exactly what `spec.py` decides (docs/PROTOCOL.md, "Fork choice and finality"), but
keeps every input of the decision up to date as events arrive instead of recomputing it:

- `ProtoArray` holds the fork-choice tree (first-parent edges) under the finalized commit as flat
  arrays: parent index, weight, best child, best descendant, and the two per-node inputs of the
  best-child choice (accepted, tie-break ratio). Children always have higher indices than their
  parents, so one pass over the changed nodes from the highest index down applies weight deltas
  and repairs best children; the head is then the root's best descendant, read in O(1).
- `ProtoArrayForkChoice` adds the per-verifier vote tracker (a new vote is O(1): it only marks
  the verifier dirty; deltas are computed for dirty verifiers when the head is next needed), the
  per-commit verdict tallies with incremental acceptance and rejection, and finality, which
  prunes the tree below the finalized commit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from dag.fork_choice.model import (
    DEFAULT_QUORUM_PPM,
    FAILURE_VERDICTS,
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
from dag.fork_choice.spec import (
    get_fork_choice_key,
    get_weighted_median,
    has_finality_weight,
    is_accepted_by_verdicts,
    is_rejected_by_verdicts,
)

PRUNE_THRESHOLD_NODES = 256
"""The tree is compacted once at least this many nodes (array slots) lie before the finalized
node, so pruning costs amortised O(1) per commit, as in Lighthouse."""

NO_NODE = -1
"""Array value for "no parent" / "no best child"."""


class ProtoArray:
    """The fork-choice tree under the finalized commit, as flat arrays indexed by node.

    Nodes are appended in arrival order, so a node's tree parent (its commit's first parent)
    always has a lower index. `root` is the finalized node; nodes before it, and nodes after it
    that are not its descendants, are dead weight until the next `prune`.
    """

    def __init__(self, root: CommitId) -> None:
        self.ids: list[CommitId] = [root]
        self.indices: dict[CommitId, int] = {root: 0}
        self.parent: list[int] = [NO_NODE]
        self.children: list[list[int]] = [[]]
        self.weight: list[int] = [0]
        self.best_child: list[int] = [NO_NODE]
        self.best_descendant: list[int] = [0]
        self.eligible: list[bool] = [True]
        self.ratio: list[int | None] = [None]
        self.root = 0
        self._touched: set[int] = set()

    def add_node(self, commit: CommitId, parent: CommitId) -> None:
        """Appends `commit` under its tree parent, unless that parent was pruned (then the
        commit can never be under the finalized commit, and fork choice ignores it)."""
        parent_index = self.indices.get(parent)
        if parent_index is None:
            return
        index = len(self.ids)
        self.ids.append(commit)
        self.indices[commit] = index
        self.parent.append(parent_index)
        self.children.append([])
        self.children[parent_index].append(index)
        self.weight.append(0)
        self.best_child.append(NO_NODE)
        self.best_descendant.append(index)
        self.eligible.append(False)
        self.ratio.append(None)

    def set_eligible(self, commit: CommitId, eligible: bool) -> None:
        """Records whether a node is accepted; its parent's best child is repaired in the next
        `apply_score_changes`."""
        index = self.indices.get(commit)
        if index is not None:
            self.eligible[index] = eligible
            self._touched.add(index)

    def set_ratio(self, commit: CommitId, ratio: int | None) -> None:
        """Records a node's tie-break ratio, likewise."""
        index = self.indices.get(commit)
        if index is not None and self.ratio[index] != ratio:
            self.ratio[index] = ratio
            self._touched.add(index)

    def _is_better(self, a: int, b: int) -> bool:
        """Whether node `a` beats its sibling `b` for best child (weight, then ratio, then id)."""
        weight_a, weight_b = self.weight[a], self.weight[b]
        if weight_a != weight_b:
            return weight_a > weight_b
        return get_fork_choice_key(weight_a, self.ratio[a], self.ids[a]) < get_fork_choice_key(
            weight_b, self.ratio[b], self.ids[b]
        )

    def _rescan(self, index: int) -> None:
        """Chooses a node's best child among all its eligible children (needed when the old best
        child got worse: a sibling that did not change may now beat it)."""
        best = NO_NODE
        for child in self.children[index]:
            if self.eligible[child] and (best == NO_NODE or self._is_better(child, best)):
                best = child
        self.best_child[index] = best

    def apply_score_changes(self, deltas: dict[int, int]) -> None:
        """Adds `deltas` (node index -> weight change) and repairs best children and best
        descendants, visiting only changed nodes and their ancestors, highest index first so a
        node is visited after all its changed children (its delta then includes theirs)."""
        touched, self._touched = self._touched, set()
        pending = set(deltas) | touched
        heap = [-index for index in pending]
        heapq.heapify(heap)
        rescan: set[int] = set()
        weight, parent, best_child, best_descendant = (
            self.weight,
            self.parent,
            self.best_child,
            self.best_descendant,
        )
        while heap:
            index = -heapq.heappop(heap)
            if index in rescan:
                self._rescan(index)
            best = best_child[index]
            descendant = best_descendant[best] if best != NO_NODE else index
            descendant_changed = descendant != best_descendant[index]
            best_descendant[index] = descendant
            delta = deltas.get(index, 0)
            weight[index] += delta
            parent_index = parent[index]
            if parent_index == NO_NODE:
                continue
            notify = False
            if delta:
                deltas[parent_index] = deltas.get(parent_index, 0) + delta
                notify = True
            parent_best = best_child[parent_index]
            if parent_best == index:
                if delta < 0 or index in touched:  # the best child may have got worse
                    rescan.add(parent_index)
                    notify = True
                elif descendant_changed and not notify:
                    self._raise_descendant(index, pending)
            elif self.eligible[index] and (
                parent_best == NO_NODE or self._is_better(index, parent_best)
            ):
                best_child[parent_index] = index
                notify = True
            if notify and parent_index not in pending:
                pending.add(parent_index)
                heapq.heappush(heap, -parent_index)

    def _raise_descendant(self, index: int, pending: set[int]) -> None:
        """Copies a node's new best descendant up the chain of ancestors whose best child leads
        to it, without the heap: when only the head moved (a new tip under an unchanged line,
        or votes that cancel near the tip) that chain is the whole canonical path, which is
        long when finality lags. Stops below an ancestor already pending, which will recompute
        its own best descendant when visited."""
        descendant = self.best_descendant[index]
        parent, best_child, best_descendant = self.parent, self.best_child, self.best_descendant
        above = parent[index]
        while (
            above != NO_NODE
            and best_child[above] == index
            and above not in pending
            and best_descendant[above] != descendant
        ):
            best_descendant[above] = descendant
            index, above = above, parent[above]

    def head(self) -> CommitId:
        """The best descendant of the finalized node (valid after `apply_score_changes`)."""
        return self.ids[self.best_descendant[self.root]]

    def canonical_path(self, head: CommitId) -> list[CommitId]:
        """The tree path from the root down to `head`, root included."""
        path: list[CommitId] = []
        index = self.indices[head]
        while index != self.root:
            path.append(self.ids[index])
            index = self.parent[index]
        path.append(self.ids[self.root])
        return path[::-1]

    def subtree(self) -> list[int]:
        """Indices of the root and its descendants."""
        inside = {self.root}
        for index in range(self.root + 1, len(self.ids)):
            if self.parent[index] in inside:
                inside.add(index)
        return sorted(inside)

    def set_root(self, commit: CommitId, prune_threshold: int) -> None:
        """Makes `commit` (a descendant of the root) the new root, pruning when enough dead
        slots lie before it."""
        self.root = self.indices[commit]
        if self.root >= prune_threshold:
            self.prune()

    def prune(self) -> None:
        """Keeps only the root and its descendants, renumbered in the same order. Called after
        `apply_score_changes`, so no delta is pending."""
        assert not self._touched, "prune right after apply_score_changes"
        kept = self.subtree()
        new_index = {old: new for new, old in enumerate(kept)}
        self.ids = [self.ids[old] for old in kept]
        self.indices = {commit: index for index, commit in enumerate(self.ids)}
        self.parent = [new_index.get(self.parent[old], NO_NODE) for old in kept]
        self.children = [[new_index[child] for child in self.children[old]] for old in kept]
        self.weight = [self.weight[old] for old in kept]
        self.best_child = [new_index.get(self.best_child[old], NO_NODE) for old in kept]
        self.best_descendant = [new_index[self.best_descendant[old]] for old in kept]
        self.eligible = [self.eligible[old] for old in kept]
        self.ratio = [self.ratio[old] for old in kept]
        self.root = 0


class _CommitRecord:
    """What the store knows about one commit: its place in the DAG, its verdicts and their
    tallies (kept only while it is not final), and its acceptance."""

    __slots__ = (
        "accepted",
        "children",
        "failure_stake",
        "final",
        "improved_stake",
        "order",
        "parents",
        "rejected",
        "verdict_stake",
        "verdicts",
    )

    def __init__(self, order: int, parents: tuple[CommitId, ...]) -> None:
        self.order = order
        self.parents = parents
        self.children: list[CommitId] = []
        self.verdicts: dict[VerifierId, tuple[int, VerdictClaim]] = {}  # (seq, claim)
        self.verdict_stake = 0
        self.improved_stake = 0
        self.failure_stake = 0
        self.accepted = False
        self.rejected = False
        self.final = False


class _Vote:
    """A verifier's latest head vote and where its weight is counted in the tree now."""

    __slots__ = ("attestation_id", "counted_head", "counted_stake", "head", "seq")

    def __init__(self, seq: int, attestation_id: bytes, head: CommitId) -> None:
        self.seq = seq
        self.attestation_id = attestation_id
        self.head = head
        self.counted_head: CommitId | None = None
        self.counted_stake = 0


class ProtoArrayForkChoice:
    """Fork choice and finality, incremental (the `ForkChoice` interface of model.py)."""

    def __init__(
        self,
        genesis: CommitId,
        stakes: Mapping[VerifierId, int],
        quorum_ppm: int = DEFAULT_QUORUM_PPM,
        prune_threshold: int = PRUNE_THRESHOLD_NODES,
    ) -> None:
        check_stakes(stakes)
        check_quorum_ppm(quorum_ppm)
        self._genesis = genesis
        self._quorum_ppm = quorum_ppm
        self._prune_threshold = prune_threshold
        self._stakes: dict[VerifierId, int] = dict(stakes)
        self._equivocators: set[VerifierId] = set()
        self._total = sum(self._stakes.values())
        genesis_record = _CommitRecord(0, ())
        genesis_record.accepted = genesis_record.final = True
        self._records: dict[CommitId, _CommitRecord] = {genesis: genesis_record}
        self._open: dict[CommitId, _CommitRecord] = {}  # not final, in arrival order
        self._votes: dict[VerifierId, _Vote] = {}
        self._dirty_votes: set[VerifierId] = set()
        self._stale_ratios: set[CommitId] = set()  # tie-break ratios to recompute before a head
        self._tree = ProtoArray(genesis)
        self._finalized_chain: list[CommitId] = [genesis]
        self._head = genesis

    # -- events ---------------------------------------------------------------------------------

    def add_commit(self, commit: Commit) -> None:
        """Adds a commit whose parents are all known; a second copy changes nothing."""
        if not check_commit(commit, self._genesis, self._parents_of):
            return
        record = _CommitRecord(len(self._records), commit.parents)
        for parent in commit.parents:
            self._records[parent].children.append(commit.id)
        self._records[commit.id] = record
        self._open[commit.id] = record
        self._tree.add_node(commit.id, commit.parents[0])
        self._refresh(commit.id, record)

    def add_attestation(self, attestation: Attestation) -> None:
        """Records the verdict and the head vote of an attestation, detecting equivocation: O(1)
        for a vote; a verdict also updates its commit's tallies and, when that flips its
        acceptance or rejection, its descendants'."""
        check_attestation(attestation, self._parents_of)
        verifier = attestation.verifier
        if verifier in self._equivocators:
            return
        vote = self._votes.get(verifier)
        if (
            vote is not None
            and attestation.seq == vote.seq
            and attestation.attestation_id != vote.attestation_id
        ):
            self.mark_equivocator(verifier)
            return
        claim = attestation.verdict
        if claim is not None and not self._record_verdict(verifier, attestation.seq, claim):
            return
        if vote is None:
            self._votes[verifier] = _Vote(
                attestation.seq, attestation.attestation_id, attestation.head
            )
            self._dirty_votes.add(verifier)
        elif attestation.seq > vote.seq:
            vote.seq = attestation.seq
            vote.attestation_id = attestation.attestation_id
            vote.head = attestation.head
            self._dirty_votes.add(verifier)

    def mark_equivocator(self, verifier: VerifierId) -> None:
        """Takes the verifier's stake out of weights, tallies and the total at once, for good."""
        if verifier in self._equivocators:
            return
        had_stake = self._stake(verifier) > 0
        self._equivocators.add(verifier)
        if had_stake:
            self._dirty_votes.add(verifier)
            self._restake()

    def set_stakes(self, stakes: Mapping[VerifierId, int]) -> None:
        """Replaces the stake snapshot (a new epoch): every vote and tally whose verifier's stake
        changed is re-weighed."""
        check_stakes(stakes)
        old, self._stakes = self._stakes, dict(stakes)
        changed = {v for v in old.keys() | stakes.keys() if old.get(v, 0) != stakes.get(v, 0)}
        if changed:
            self._dirty_votes.update(changed & self._votes.keys())
            self._restake()

    def update_head(self) -> HeadUpdate:
        """Applies pending changes, reads the head, and finalizes the deepest commit of the
        canonical chain with 2/3 of total active stake behind it."""
        self._apply()
        tree = self._tree
        head = tree.head()
        newly: list[CommitId] = []
        index = tree.best_child[tree.root]
        while index != NO_NODE and has_finality_weight(tree.weight[index], self._total):
            newly.append(tree.ids[index])
            index = tree.best_child[index]
        if newly:
            self._finalize(newly[-1])
            self._finalized_chain.extend(newly)
            tree.set_root(newly[-1], self._prune_threshold)
        self._head = head
        return HeadUpdate(head, self.finalized, tuple(newly))

    # -- queries --------------------------------------------------------------------------------

    @property
    def genesis(self) -> CommitId:
        return self._genesis

    @property
    def head(self) -> CommitId:
        """The head as of the last `update_head`."""
        return self._head

    @property
    def finalized(self) -> CommitId:
        return self._finalized_chain[-1]

    def total_active_stake(self) -> int:
        return self._total

    def equivocators(self) -> frozenset[VerifierId]:
        return frozenset(self._equivocators)

    @property
    def equivocator_count(self) -> int:
        """How many equivocators are known (cheap, unlike copying the set)."""
        return len(self._equivocators)

    def is_accepted(self, commit: CommitId) -> bool:
        return self._record(commit).accepted

    def is_rejected(self, commit: CommitId) -> bool:
        return self._record(commit).rejected

    def is_final(self, commit: CommitId) -> bool:
        return self._record(commit).final

    def accepted(self) -> frozenset[CommitId]:
        return frozenset(commit for commit, record in self._records.items() if record.accepted)

    def rejected(self) -> frozenset[CommitId]:
        return frozenset(commit for commit, record in self._records.items() if record.rejected)

    def improvement_ratio(self, commit: CommitId) -> int | None:
        return self._median_ratio(self._record(commit))

    def weight(self, commit: CommitId) -> int:
        self._record(commit)
        self._apply()
        tree = self._tree
        index = tree.indices.get(commit, NO_NODE)
        node = index
        while node > tree.root:
            node = tree.parent[node]
        if index == NO_NODE or node != tree.root:
            raise InvalidInputError("weights exist only under the finalized commit")
        return tree.weight[index]

    def weights(self) -> dict[CommitId, int]:
        self._apply()
        tree = self._tree
        return {tree.ids[index]: tree.weight[index] for index in tree.subtree()}

    def canonical_chain(self) -> list[CommitId]:
        return self._finalized_chain[:-1] + self._tree.canonical_path(self._head)

    # -- internals ------------------------------------------------------------------------------

    def _parents_of(self, commit: CommitId) -> tuple[CommitId, ...] | None:
        record = self._records.get(commit)
        return None if record is None else record.parents

    def _record(self, commit: CommitId) -> _CommitRecord:
        record = self._records.get(commit)
        if record is None:
            raise UnknownCommitError(commit)
        return record

    def _stake(self, verifier: VerifierId) -> int:
        if verifier in self._equivocators:
            return 0
        return self._stakes.get(verifier, 0)

    def _record_verdict(self, verifier: VerifierId, seq: int, claim: VerdictClaim) -> bool:
        """Adds a verdict to its commit's tallies; returns False when its result contradicts the
        verifier's earlier verdict on that commit (equivocation). A later verdict with the same
        result only replaces the ratio and baseline of the earlier one."""
        record = self._records[claim.commit]
        previous = record.verdicts.get(verifier)
        if previous is not None:
            previous_seq, previous_claim = previous
            if previous_claim.verdict != claim.verdict:
                self.mark_equivocator(verifier)
                return False
            if seq > previous_seq:
                record.verdicts[verifier] = (seq, claim)
                if claim.verdict == Verdict.IMPROVED:
                    self._stale_ratios.add(claim.commit)
            return True
        record.verdicts[verifier] = (seq, claim)
        stake = self._stake(verifier)
        if record.final or stake == 0:
            return True
        record.verdict_stake += stake
        if claim.verdict == Verdict.IMPROVED:
            record.improved_stake += stake
            if claim.parent == record.parents[0]:
                self._stale_ratios.add(claim.commit)
        elif claim.verdict in FAILURE_VERDICTS:
            record.failure_stake += stake
        if self._refresh(claim.commit, record):
            self._propagate(record.children)
        return True

    def _median_ratio(self, record: _CommitRecord) -> int | None:
        first_parent = record.parents[0] if record.parents else None
        return get_weighted_median(
            (claim.ratio_ppm, self._stake(verifier))
            for verifier, (_, claim) in record.verdicts.items()
            if claim.verdict == Verdict.IMPROVED and claim.parent == first_parent
        )

    def _refresh(self, commit: CommitId, record: _CommitRecord) -> bool:
        """Recomputes one commit's acceptance and rejection from its tallies and its parents';
        returns whether either changed (then its children need the same)."""
        if record.final:
            return False
        parents = [self._records[parent] for parent in record.parents]
        rejected = is_rejected_by_verdicts(record.failure_stake, record.verdict_stake) or any(
            parent.rejected for parent in parents
        )
        accepted = (
            not rejected
            and all(parent.accepted for parent in parents)
            and is_accepted_by_verdicts(
                record.improved_stake, record.verdict_stake, self._total, self._quorum_ppm
            )
        )
        if accepted == record.accepted and rejected == record.rejected:
            return False
        if accepted != record.accepted:
            record.accepted = accepted
            self._tree.set_eligible(commit, accepted)
        record.rejected = rejected
        return True

    def _propagate(self, commits: list[CommitId]) -> None:
        """Refreshes `commits` and, wherever something changed, their descendants, in arrival
        order so every commit is refreshed after its parents."""
        heap = [(self._records[commit].order, commit) for commit in commits]
        heapq.heapify(heap)
        queued = set(commits)
        while heap:
            _, commit = heapq.heappop(heap)
            record = self._records[commit]
            if self._refresh(commit, record):
                for child in record.children:
                    if child not in queued:
                        queued.add(child)
                        heapq.heappush(heap, (self._records[child].order, child))

    def _restake(self) -> None:
        """After stakes changed (a new snapshot or an equivocator): recompute the total and, in
        arrival order, every non-final commit's tallies and acceptance (the quorum depends on the
        total, so any commit may flip); their ratios are recomputed with the next head."""
        self._total = sum(
            stake for verifier, stake in self._stakes.items() if verifier not in self._equivocators
        )
        for commit, record in self._open.items():
            verdict = improved = failure = 0
            for verifier, (_, claim) in record.verdicts.items():
                stake = self._stake(verifier)
                verdict += stake
                if claim.verdict == Verdict.IMPROVED:
                    improved += stake
                elif claim.verdict in FAILURE_VERDICTS:
                    failure += stake
            record.verdict_stake, record.improved_stake, record.failure_stake = (
                verdict,
                improved,
                failure,
            )
            self._stale_ratios.add(commit)
            self._refresh(commit, record)

    def _apply(self) -> None:
        """Recomputes the stale ratios of tree nodes, turns the dirty votes into weight deltas
        (one pass) and applies them (one reverse pass over the changed nodes)."""
        indices = self._tree.indices
        for commit in self._stale_ratios:
            if commit in indices:
                self._tree.set_ratio(commit, self._median_ratio(self._records[commit]))
        self._stale_ratios.clear()
        deltas: dict[int, int] = {}
        for verifier in self._dirty_votes:
            vote = self._votes.get(verifier)
            if vote is None:
                continue
            stake = self._stake(verifier)
            if vote.counted_head == vote.head and vote.counted_stake == stake:
                continue
            old = indices.get(vote.counted_head) if vote.counted_head is not None else None
            if old is not None and vote.counted_stake:
                deltas[old] = deltas.get(old, 0) - vote.counted_stake
            new = indices.get(vote.head)
            if new is not None and stake:
                deltas[new] = deltas.get(new, 0) + stake
            vote.counted_head, vote.counted_stake = vote.head, stake
        self._dirty_votes.clear()
        self._tree.apply_score_changes(deltas)

    def _finalize(self, commit: CommitId) -> None:
        """Makes `commit` and all its ancestors final: accepted for good, tallies no longer
        kept."""
        todo = [commit]
        while todo:
            current = todo.pop()
            record = self._records[current]
            if record.final:
                continue
            assert record.accepted, "only accepted commits and their ancestors become final"
            record.final = True
            del self._open[current]
            todo.extend(record.parents)
