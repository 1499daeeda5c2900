"""Each rule of docs/PROTOCOL.md "Fork choice and finality", shown on a hand-built scenario.

Every test runs against both implementations: the reference (`spec`) and the proto-array.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dag.fork_choice import (
    DEFAULT_QUORUM_PPM,
    Attestation,
    Commit,
    ForkChoice,
    InvalidInputError,
    ProtoArrayForkChoice,
    SpecForkChoice,
    UnknownCommitError,
    Verdict,
    VerdictClaim,
    get_weighted_median,
)

G = "genesis"
IMPROVED, NOT_IMPROVED, TIMEOUT = Verdict.IMPROVED, Verdict.NOT_IMPROVED, Verdict.TIMEOUT
GATE_FAILED, BUILD_FAILED, SCOPE = (
    Verdict.GATE_FAILED,
    Verdict.BUILD_FAILED,
    Verdict.SCOPE_VIOLATION,
)

Factory = Callable[..., ForkChoice]


def proto_array_pruning_eagerly(*args: object, **kwargs: object) -> ProtoArrayForkChoice:
    return ProtoArrayForkChoice(*args, prune_threshold=0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(
    params=[SpecForkChoice, ProtoArrayForkChoice, proto_array_pruning_eagerly],
    ids=["spec", "proto_array", "proto_array_pruning"],
)
def impl(request: pytest.FixtureRequest) -> Factory:
    return request.param


class Net:
    """A fork-choice store seen through names: commits and verifiers are short strings."""

    def __init__(
        self, impl: Factory, stakes: dict[str, int], quorum_ppm: int = DEFAULT_QUORUM_PPM
    ) -> None:
        self.fc = impl(G.encode(), self._stakes(stakes), quorum_ppm)
        self.seq: dict[str, int] = {}
        self.heads: dict[str, str] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self._attestations = 0

    @staticmethod
    def _stakes(stakes: dict[str, int]) -> dict[bytes, int]:
        return {name.encode(): stake for name, stake in stakes.items()}

    def commit(self, name: str, *parents: str) -> str:
        parents = parents or (G,)
        self.fc.add_commit(Commit(name.encode(), tuple(p.encode() for p in parents)))
        self.parents[name] = parents
        return name

    def attest(
        self,
        verifier: str,
        head: str | None = None,
        *,
        seq: int | None = None,
        verdict: tuple[str, Verdict] | None = None,
        ratio_ppm: int = 950_000,
        against: str | None = None,
        attestation_id: bytes | None = None,
    ) -> None:
        """Signs the verifier's next attestation (its head vote defaults to its last one)."""
        if seq is None:
            seq = self.seq.get(verifier, 0) + 1
        self.seq[verifier] = max(seq, self.seq.get(verifier, 0))
        head = head or self.heads.get(verifier, G)
        self.heads[verifier] = head
        claim = None
        if verdict is not None:
            commit, kind = verdict
            parent = against or self.parents[commit][0]
            claim = VerdictClaim(commit.encode(), parent.encode(), kind, ratio_ppm)
        self._attestations += 1
        self.fc.add_attestation(
            Attestation(
                attestation_id or b"att-%d" % self._attestations,
                verifier.encode(),
                seq,
                head.encode(),
                claim,
            )
        )

    def judge(self, commit: str, verdicts: dict[str, Verdict], ratio_ppm: int = 950_000) -> None:
        for verifier, kind in verdicts.items():
            self.attest(verifier, verdict=(commit, kind), ratio_ppm=ratio_ppm)

    def accept(self, commit: str, *verifiers: str, ratio_ppm: int = 950_000) -> None:
        self.judge(commit, dict.fromkeys(verifiers, IMPROVED), ratio_ppm)

    def vote(self, head: str, *verifiers: str) -> None:
        for verifier in verifiers:
            self.attest(verifier, head)

    def update(self) -> str:
        return self.fc.update_head().head.decode()

    def accepted(self, commit: str) -> bool:
        return self.fc.is_accepted(commit.encode())

    def rejected(self, commit: str) -> bool:
        return self.fc.is_rejected(commit.encode())

    def weight(self, commit: str) -> int:
        return self.fc.weight(commit.encode())

    @property
    def finalized(self) -> str:
        return self.fc.finalized.decode()

    def chain(self) -> list[str]:
        return [c.decode() for c in self.fc.canonical_chain()]

    def set_stakes(self, stakes: dict[str, int]) -> None:
        self.fc.set_stakes(self._stakes(stakes))


# -- the genesis -------------------------------------------------------------------------------


def test_genesis_is_accepted_final_and_the_first_head(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    assert net.accepted(G) and net.fc.is_final(G.encode()) and not net.rejected(G)
    assert net.update() == G
    assert net.chain() == [G]


# -- acceptance --------------------------------------------------------------------------------


def test_improved_from_less_than_two_thirds_of_verdict_stake_is_not_accepted(impl: Factory) -> None:
    net = Net(impl, {"a": 3, "b": 2})
    net.commit("x")
    net.judge("x", {"a": IMPROVED, "b": NOT_IMPROVED})  # 3 of 5 < 2/3, quorum met
    assert not net.accepted("x") and not net.rejected("x")


def test_improved_from_exactly_two_thirds_of_verdict_stake_is_accepted(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1})
    net.commit("x")
    net.judge("x", {"a": IMPROVED, "b": NOT_IMPROVED})
    assert net.accepted("x")


def test_improved_one_short_of_quorum_is_not_accepted(impl: Factory) -> None:
    net = Net(impl, {"a": 999, "b": 2001})  # quorum: 1/3 of 3000 = 1000
    net.commit("x")
    net.accept("x", "a")  # all of the verdict stake, but 999 < 1000 of total
    assert not net.accepted("x")
    net.set_stakes({"a": 1000, "b": 2000})  # a new epoch: now exactly the quorum
    assert net.accepted("x")


def test_quorum_is_a_parameter_in_ppm(impl: Factory) -> None:
    for quorum_ppm, accepted in [(500_000, True), (500_001, False)]:
        net = Net(impl, {"a": 1, "b": 1}, quorum_ppm)
        net.commit("x")
        net.accept("x", "a")
        assert net.accepted("x") is accepted


def test_a_commit_nobody_judged_is_pending(impl: Factory) -> None:
    net = Net(impl, {"a": 1}, quorum_ppm=0)
    net.commit("x")
    assert not net.accepted("x") and not net.rejected("x")


def test_a_commit_is_accepted_only_when_all_its_parents_are(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y")
    net.commit("m", "x", "y")
    net.accept("x", "a")
    net.accept("m", "a")
    assert not net.accepted("m")  # y, its second parent, is still pending
    net.accept("y", "a")
    assert net.accepted("m")


# -- rejection ---------------------------------------------------------------------------------


def test_failures_from_more_than_a_third_reject_a_commit_and_its_descendants(
    impl: Factory,
) -> None:
    net = Net(impl, {"a": 5, "b": 3})
    net.commit("x")
    net.commit("y", "x")
    net.commit("m", "y", G)
    net.judge("x", {"a": IMPROVED, "b": GATE_FAILED})  # 3 of 8 > 1/3
    net.accept("y", "a", "b")
    net.accept("m", "a", "b")
    assert [net.rejected(c) for c in ("x", "y", "m")] == [True, True, True]
    assert not any(net.accepted(c) for c in ("x", "y", "m"))
    net.vote("m", "a", "b")
    assert net.update() == G


@pytest.mark.parametrize("failure", [GATE_FAILED, BUILD_FAILED, SCOPE])
def test_failures_from_exactly_a_third_do_not_reject(impl: Factory, failure: Verdict) -> None:
    net = Net(impl, {"a": 2, "b": 1})
    net.commit("x")
    net.judge("x", {"a": IMPROVED, "b": failure})  # exactly 1/3 fails, exactly 2/3 improved
    assert not net.rejected("x")
    assert net.accepted("x")


def test_timeout_and_not_improved_weigh_in_verdict_stake_but_never_reject(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 1})
    net.commit("x")
    net.judge("x", {"a": IMPROVED, "b": TIMEOUT, "c": NOT_IMPROVED})
    assert not net.accepted("x") and not net.rejected("x")


def test_byzantine_minority_answering_first_cannot_reject_an_honest_commit_for_good(
    impl: Factory,
) -> None:
    net = Net(impl, {"byzantine": 1, "h1": 1, "h2": 1, "h3": 1})
    net.commit("x")
    net.commit("child", "x")
    net.judge("x", {"byzantine": GATE_FAILED})
    assert net.rejected("x") and net.rejected("child")  # for now: only the byzantine answered
    net.accept("x", "h1")
    assert net.rejected("x")  # 1 of 2 fails
    net.accept("x", "h2")
    assert not net.rejected("x") and net.accepted("x")  # 1 of 3 fails, 2 of 3 improved
    assert not net.rejected("child")
    net.accept("x", "h3")
    net.vote("x", "h1", "h2", "h3")
    assert net.update() == "x"


def test_acceptance_follows_the_verdicts_as_they_arrive(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 1})
    net.commit("x")
    net.accept("x", "a")
    assert net.accepted("x")
    net.judge("x", {"b": NOT_IMPROVED})  # 1 of 2 improved: no longer accepted
    assert not net.accepted("x")
    net.accept("x", "c")
    assert net.accepted("x")


# -- head votes and equivocation ---------------------------------------------------------------


def test_newer_vote_replaces_older(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 1})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a")
    net.attest("a", "x", seq=10)
    net.attest("a", "y", seq=11)
    net.update()
    assert (net.weight("x"), net.weight("y")) == (0, 1)


def test_older_vote_never_replaces_newer(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 1})
    for commit in ("x", "y"):
        net.commit(commit)
    net.attest("a", "y", seq=5)
    net.attest("a", "x", seq=4)  # delivered late
    net.update()
    assert (net.weight("x"), net.weight("y")) == (0, 1)


def test_verdict_in_a_late_attestation_still_counts(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.attest("a", G, seq=5)
    net.attest("a", "x", seq=4, verdict=("x", IMPROVED))
    assert net.accepted("x")


def test_same_seq_with_another_attestation_is_equivocation(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1})
    net.commit("x")
    net.attest("a", "x", seq=1, attestation_id=b"first")
    net.attest("a", "x", seq=1, attestation_id=b"second")
    assert net.fc.equivocators() == {b"a"}
    assert net.fc.total_active_stake() == 1


def test_the_same_attestation_delivered_twice_is_not_equivocation(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    for _ in range(2):
        net.attest("a", "x", seq=1, verdict=("x", IMPROVED), attestation_id=b"once")
    assert net.fc.equivocators() == frozenset()
    assert net.accepted("x")


def test_a_second_different_verdict_on_a_commit_is_equivocation(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1})
    net.commit("x")
    net.attest("a", verdict=("x", IMPROVED))
    net.attest("a", verdict=("x", GATE_FAILED))
    assert net.fc.equivocators() == {b"a"}


def test_a_remeasured_verdict_with_the_same_result_refines_the_ratio(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 2})
    net.commit("x")
    net.attest("a", verdict=("x", IMPROVED), ratio_ppm=900_000, seq=5)
    net.attest("a", verdict=("x", IMPROVED), ratio_ppm=800_000, seq=4)  # older: ignored
    assert net.fc.improvement_ratio(b"x") == 900_000
    net.attest("a", verdict=("x", IMPROVED), ratio_ppm=850_000, seq=6)
    assert net.fc.improvement_ratio(b"x") == 850_000
    assert net.fc.equivocators() == frozenset()


def test_equivocation_drops_weight_and_verdict_stake_at_once(impl: Factory) -> None:
    net = Net(impl, {"a": 3, "b": 2, "c": 2})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a", "b", "c")
    net.vote("x", "a")
    net.vote("y", "b")
    assert net.update() == "x"
    net.commit("z", "y")
    net.judge("z", {"a": IMPROVED, "b": NOT_IMPROVED})  # 3 of 5: not accepted
    net.judge("z", {"c": IMPROVED})  # 5 of 7: accepted
    assert net.accepted("z")
    net.fc.mark_equivocator(b"a")
    assert not net.accepted("z")  # 2 of 4 without a
    assert net.update() == "y"
    assert (net.weight("x"), net.weight("y")) == (0, 2)


def test_an_equivocator_stays_out_for_good(impl: Factory) -> None:
    net = Net(impl, {"a": 5, "b": 1})
    net.commit("x")
    net.accept("x", "b")
    net.fc.mark_equivocator(b"a")
    net.vote("x", "a")
    net.set_stakes({"a": 10, "b": 1})
    net.update()
    assert net.weight("x") == 0
    assert net.fc.total_active_stake() == 1


# -- fork choice -------------------------------------------------------------------------------


def test_the_walk_steps_to_the_heaviest_accepted_child(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 2, "c": 4})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a", "b", "c")
    net.commit("y1", "y")
    net.commit("y2", "y")
    net.accept("y1", "a", "b", "c")
    net.accept("y2", "a", "b", "c")
    net.vote("x", "c")
    net.vote("y1", "a")
    net.vote("y2", "b")
    assert net.update() == "x"  # x: 4 against y: 3
    net.set_stakes({"a": 1, "b": 2, "c": 2})
    assert net.update() == "y2"  # y: 3 against x: 2; then y2: 2 against y1: 1
    assert net.chain() == [G, "y", "y2"]


def test_the_walk_never_steps_to_a_pending_or_rejected_child(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 1})
    net.commit("x")
    net.accept("x", "a", "b", "c")
    net.commit("pending", "x")
    net.commit("bad", "x")
    net.commit("good", "x")
    net.judge("bad", {"a": GATE_FAILED, "b": IMPROVED})
    net.accept("good", "c")
    net.vote("pending", "a")
    net.vote("bad", "b")
    assert net.update() == "good"  # the only eligible child, though it has no votes


def test_a_vote_for_a_pending_commit_counts_for_its_ancestors(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 3})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a", "b")
    net.commit("p", "y")  # nobody judged it yet
    net.vote("x", "a")
    net.vote("p", "b")
    assert net.update() == "y"
    assert (net.weight("x"), net.weight("y"), net.weight("p")) == (2, 3, 3)


def test_a_tie_goes_to_the_lower_weighted_median_ratio(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")  # listed first and ...
    net.commit("y")
    net.accept("x", "a", ratio_ppm=900_000)
    net.accept("y", "a", ratio_ppm=800_000)  # ... y is faster
    assert net.update() == "y"  # nobody voted: weights tie at 0


def test_an_equal_ratio_tie_goes_to_the_lower_commit_id(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    for commit in ("yy", "xx"):
        net.commit(commit)
        net.accept(commit, "a", ratio_ppm=900_000)
    assert net.update() == "xx"


def test_a_remeasurement_can_change_the_tie_break(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y")
    net.attest("a", verdict=("x", IMPROVED), ratio_ppm=900_000, seq=1)
    net.attest("a", verdict=("y", IMPROVED), ratio_ppm=850_000, seq=2)
    assert net.update() == "y"
    net.attest("a", verdict=("y", IMPROVED), ratio_ppm=950_000, seq=3)
    assert net.update() == "x"


def test_weight_beats_a_better_ratio(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y")
    net.accept("x", "a", ratio_ppm=900_000)
    net.accept("y", "a", ratio_ppm=500_000)
    net.vote("x", "a")
    assert net.update() == "x"


def test_the_ratio_is_the_stake_weighted_median_of_improved_verdicts(impl: Factory) -> None:
    net = Net(impl, {"a": 3, "b": 1, "c": 1, "d": 9})
    net.commit("x")
    net.attest("a", verdict=("x", IMPROVED), ratio_ppm=900_000)
    net.attest("b", verdict=("x", IMPROVED), ratio_ppm=700_000)
    net.attest("c", verdict=("x", IMPROVED), ratio_ppm=800_000)
    net.attest("d", verdict=("x", NOT_IMPROVED), ratio_ppm=1_000_000)  # not an improvement
    assert net.fc.improvement_ratio(b"x") == 900_000  # weights 1, 1, 3: 900k holds the middle


def test_only_verdicts_against_the_first_parent_give_a_merge_its_ratio(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y")
    net.accept("x", "a")
    net.accept("y", "a")
    net.commit("merge", "x", "y")
    net.commit("plain", "x")
    net.attest("a", verdict=("merge", IMPROVED), against="y", ratio_ppm=100_000)
    net.accept("plain", "a", ratio_ppm=999_999)
    assert net.fc.improvement_ratio(b"merge") is None
    net.vote("x", "a")
    net.update()
    assert net.update() == "plain"  # an unmeasured commit loses a weight tie to a measured one


def test_a_vote_for_a_merge_counts_along_its_first_parent_only(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 3})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a", "b")
    net.commit("m", "x", "y")
    net.accept("m", "a", "b")
    net.vote("m", "a")
    net.vote("y", "b")
    assert net.update() == "y"  # y: 3 > x: 2, though a's merge contains y too
    assert (net.weight("x"), net.weight("y"), net.weight("m")) == (2, 3, 2)


def test_weighted_median_is_the_lower_weighted_median() -> None:
    assert get_weighted_median([]) is None
    assert get_weighted_median([(5, 0)]) is None
    assert get_weighted_median([(10, 1), (20, 1)]) == 10
    assert get_weighted_median([(20, 2), (10, 1)]) == 20
    assert get_weighted_median([(10, 2), (20, 1), (30, 1)]) == 10
    assert get_weighted_median([(10, 1), (20, 1), (30, 1)]) == 20


# -- finality ----------------------------------------------------------------------------------


def test_a_commit_with_two_thirds_of_total_stake_behind_it_becomes_final(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1, "c": 1})  # 2/3 of 4: at least 3 (8/3 rounded up)
    net.commit("x")
    net.commit("y", "x")
    net.accept("x", "a", "b")
    net.accept("y", "a", "b")
    net.vote("x", "b")
    net.update()
    assert net.finalized == G
    net.vote("y", "a")  # x: 3, y: 2
    update = net.fc.update_head()
    assert (update.head, update.finalized, update.newly_finalized) == (b"y", b"x", (b"x",))
    assert net.fc.is_final(b"x") and not net.fc.is_final(b"y")


def test_finality_counts_total_active_stake_not_just_the_voters(impl: Factory) -> None:
    net = Net(impl, {"a": 1, "b": 1, "c": 2})
    net.commit("x")
    net.accept("x", "a", "b")
    net.vote("x", "a", "b")  # every vote, but 2 of 4
    assert net.update() == "x"
    assert net.finalized == G


def test_a_heavier_fork_cannot_revert_a_final_commit(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1, "c": 10})
    net.set_stakes({"a": 2, "b": 1})
    net.commit("x")
    net.accept("x", "a", "b")
    net.vote("x", "a", "b")
    net.update()
    assert net.finalized == "x"
    net.set_stakes({"a": 2, "b": 1, "c": 10})  # c bonds a large stake
    net.commit("fork")
    net.accept("fork", "a", "b", "c")
    net.vote("fork", "a", "b", "c")
    assert net.update() == "x"
    assert net.chain() == [G, "x"] and net.finalized == "x"


def test_a_final_commit_stays_accepted_when_later_verdicts_turn(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1})
    net.commit("x")
    net.accept("x", "a")
    net.vote("x", "a")
    net.update()
    assert net.finalized == "x"
    net.set_stakes({"a": 2, "b": 1, "c": 100})
    net.judge("x", {"b": GATE_FAILED, "c": GATE_FAILED})
    assert net.accepted("x") and not net.rejected("x")
    net.commit("y", "x")
    net.accept("y", "c")
    assert net.accepted("y")


def test_finality_only_moves_forward(impl: Factory) -> None:
    net = Net(impl, {"a": 2, "b": 1})
    net.commit("x")
    net.commit("y", "x")
    net.accept("x", "a")
    net.accept("y", "a")
    net.vote("y", "a")
    net.update()
    assert net.finalized == "y"
    net.vote("x", "a", "b")  # everyone now votes for an ancestor
    assert net.update() == "y"
    assert net.finalized == "y"


def test_finalizing_a_merge_makes_its_second_parent_final(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    for commit in ("x", "y"):
        net.commit(commit)
        net.accept(commit, "a")
    net.commit("m", "x", "y")
    net.accept("m", "a")
    net.vote("m", "a")
    update = net.fc.update_head()
    assert update.newly_finalized == (b"x", b"m")
    assert net.fc.is_final(b"y") and net.chain() == [G, "x", "m"]


def test_a_side_branch_below_finality_can_still_be_merged(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("side")
    net.accept("x", "a")
    net.vote("x", "a")
    net.update()
    assert net.finalized == "x"
    net.commit("side2", "side")  # under a commit that can no longer be canonical
    net.commit("m", "x", "side2")
    net.accept("m", "a")
    assert not net.accepted("m")
    net.accept("side", "a")
    net.accept("side2", "a")
    assert net.accepted("side2") and net.accepted("m")
    assert net.update() == "m"


# -- inputs ------------------------------------------------------------------------------------


def test_a_commit_before_its_parent_is_refused_and_changes_nothing(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    with pytest.raises(UnknownCommitError):
        net.commit("y", "x")
    net.commit("x")
    net.commit("y", "x")
    assert net.fc.accepted() == {G.encode()}


def test_a_vote_for_an_unknown_commit_is_refused(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    with pytest.raises(UnknownCommitError):
        net.attest("a", "nowhere", seq=1)
    net.commit("x")
    net.attest("a", "x", seq=1, attestation_id=b"other")  # seq 1 was not taken
    assert net.fc.equivocators() == frozenset()


def test_a_verdict_against_a_commit_that_is_not_a_parent_is_invalid(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y", "x")
    with pytest.raises(InvalidInputError):
        net.attest("a", verdict=("y", IMPROVED), against=G)


def test_negative_stakes_are_invalid(impl: Factory) -> None:
    with pytest.raises(InvalidInputError):
        Net(impl, {"a": -1})
    net = Net(impl, {"a": 1})
    with pytest.raises(InvalidInputError):
        net.set_stakes({"a": -1})
    assert net.fc.total_active_stake() == 1


def test_a_commit_known_with_other_parents_is_invalid(impl: Factory) -> None:
    net = Net(impl, {"a": 1})
    net.commit("x")
    net.commit("y")
    net.commit("x")  # the same commit again: nothing changes
    with pytest.raises(InvalidInputError):
        net.commit("x", "y")
