"""The proto-array decides exactly what the reference decides, after every event.

Hypothesis drives `SpecForkChoice` and `ProtoArrayForkChoice` with the same random event
streams: DAGs with forks and merges, stakes that change, verdicts of every kind (repeated,
re-measured and conflicting), head votes delivered in order, out of order and twice, chain forks,
explicit equivocations, malformed inputs and head updates at random moments (so the
proto-array applies batches of votes, not one at a time), with pruning after every finality
move or rarely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dag.fork_choice import (
    DEFAULT_QUORUM_PPM,
    PPM,
    PRUNE_THRESHOLD_NODES,
    Attestation,
    Commit,
    CommitId,
    ForkChoice,
    ForkChoiceError,
    ProtoArrayForkChoice,
    SpecForkChoice,
    Verdict,
    VerdictClaim,
    VerifierId,
)

GENESIS = b"genesis"
RATIOS_PPM = (850_000, 900_000, 950_000, 990_000)  # few values, so ties in the median happen


def both(spec: ForkChoice, proto: ForkChoice, action: Callable[[ForkChoice], Any]) -> Any:
    """Runs `action` on both stores: same result, or the same kind of error."""
    outcomes = []
    for store in (spec, proto):
        try:
            outcomes.append(("ok", action(store)))
        except ForkChoiceError as error:
            outcomes.append((type(error).__name__, None))
    assert outcomes[0] == outcomes[1]
    return outcomes[0][1]


def assert_same(
    spec: ForkChoice, proto: ForkChoice, commits: list[CommitId], after_head: bool
) -> None:
    assert proto.finalized == spec.finalized
    assert proto.head == spec.head
    assert proto.total_active_stake() == spec.total_active_stake()
    assert proto.equivocators() == spec.equivocators()
    assert proto.accepted() == spec.accepted()
    assert proto.rejected() == spec.rejected()
    for commit in commits:
        assert proto.is_final(commit) == spec.is_final(commit), commit
        assert proto.improvement_ratio(commit) == spec.improvement_ratio(commit), commit
    if after_head:  # reading weights applies pending votes: only then, to keep batches
        assert proto.weights() == spec.weights()
        assert proto.canonical_chain() == spec.canonical_chain()


def recent(data: st.DataObject, items: list[CommitId], label: str) -> CommitId:
    """Mostly one of the last few items (where a live DAG grows), sometimes any."""
    if data.draw(st.integers(0, 3), label=f"{label} anywhere") == 0:
        return data.draw(st.sampled_from(items), label=label)
    back = data.draw(st.integers(0, min(len(items) - 1, 4)), label=f"{label} back")
    return items[len(items) - 1 - back]


def stake_maps(verifiers: list[VerifierId]) -> st.SearchStrategy[dict[VerifierId, int]]:
    return st.fixed_dictionaries({v: st.integers(0, 6) for v in verifiers})


def run_scenario(data: st.DataObject, steps: int, prune_threshold: int) -> None:
    verifiers = [b"verifier-%d" % i for i in range(data.draw(st.integers(1, 6), label="n"))]
    stakes = data.draw(stake_maps(verifiers), label="stakes")
    quorum = data.draw(st.sampled_from([0, 250_000, DEFAULT_QUORUM_PPM, 500_000, PPM]))
    misbehaviour = data.draw(st.sampled_from([0, 1, 4]), label="misbehaviour")  # in 100
    # In a quiet network most head votes stay on the genesis, so siblings tie at weight 0 and
    # the tie-breaks (ratio, then id) decide.
    quiet = data.draw(st.booleans(), label="quiet")
    spec = SpecForkChoice(GENESIS, stakes, quorum)
    proto = ProtoArrayForkChoice(GENESIS, stakes, quorum, prune_threshold=prune_threshold)
    commits = [GENESIS]
    parents: dict[CommitId, tuple[CommitId, ...]] = {GENESIS: ()}
    broken: set[CommitId] = set()  # commits most verifiers find failing
    sent: list[Attestation] = []
    next_seq = dict.fromkeys(verifiers, 0)
    claims: dict[tuple[VerifierId, CommitId], VerdictClaim] = {}

    def some_commit(label: str) -> CommitId:
        """Where proposers build and verifiers vote: mostly the head, else near the tips."""
        if data.draw(st.booleans(), label=f"{label} at head"):
            return spec.head
        return recent(data, commits, label)

    def draw_verdict(target: CommitId) -> Verdict:
        usual = Verdict.GATE_FAILED if target in broken else Verdict.IMPROVED
        if data.draw(st.integers(0, 4), label="usual verdict") > 0:
            return usual
        return data.draw(st.sampled_from(list(Verdict)), label="verdict")

    for step in range(steps):
        roll = data.draw(st.integers(0, 99), label="event")
        chaos = data.draw(st.integers(0, 99), label="chaos") < misbehaviour
        after_head = False
        if roll < 12:  # a commit, sometimes a merge
            first = some_commit("first parent")
            others = [c for c in commits if c != first]
            extra = []
            if others and data.draw(st.integers(0, 4), label="merge") == 0:
                extra = [data.draw(st.sampled_from(others), label="second parent")]
            commit = Commit(hashlib.sha256(b"%d" % step).digest()[:4], (first, *extra))
            both(spec, proto, lambda fc, c=commit: fc.add_commit(c))
            commits.append(commit.id)
            parents[commit.id] = commit.parents
            if data.draw(st.integers(0, 4), label="broken") == 0:
                broken.add(commit.id)
        elif roll < 66:  # a fresh attestation (head vote, often with a verdict)
            verifier = data.draw(st.sampled_from(verifiers), label="verifier")
            if chaos and next_seq[verifier]:  # a fork of the verifier's attestation chain
                seq = data.draw(st.integers(0, next_seq[verifier] - 1), label="reused seq")
            else:
                seq = next_seq[verifier]
                next_seq[verifier] += data.draw(st.integers(1, 2), label="seq step")
            claim = None
            if len(commits) > 1 and data.draw(st.integers(0, 3), label="with verdict") > 0:
                unjudged = [c for c in commits[-6:] if (verifier, c) not in claims]
                if unjudged and data.draw(st.integers(0, 3), label="judge a new commit") > 0:
                    target = unjudged[-1]
                else:
                    target = recent(data, commits[1:], "verdict commit")
                if target == GENESIS:
                    target = commits[-1]
                claim = claims.get((verifier, target))
                remeasure = data.draw(st.booleans(), label="re-measure")
                if claim is None or chaos or remeasure:  # new, conflicting, or refined
                    claim = VerdictClaim(
                        target,
                        data.draw(st.sampled_from(parents[target][:2]), label="against"),
                        claim.verdict if claim and not chaos else draw_verdict(target),
                        data.draw(st.sampled_from(RATIOS_PPM), label="ratio"),
                    )
                    claims.setdefault((verifier, target), claim)
            attestation = Attestation(
                b"att-%d" % step,
                verifier,
                seq,
                GENESIS
                if quiet and data.draw(st.integers(0, 4), label="quiet vote")
                else some_commit("head vote"),
                claim,
            )
            both(spec, proto, lambda fc, a=attestation: fc.add_attestation(a))
            sent.append(attestation)
        elif roll < 73 and sent:  # an earlier attestation delivered again (late or twice)
            attestation = data.draw(st.sampled_from(sent), label="replay")
            both(spec, proto, lambda fc, a=attestation: fc.add_attestation(a))
        elif roll < 78:
            if chaos:  # equivocation evidence from elsewhere
                verifier = data.draw(st.sampled_from(verifiers), label="equivocator")
                both(spec, proto, lambda fc, v=verifier: fc.mark_equivocator(v))
            else:  # a new epoch's stakes
                stakes = data.draw(stake_maps(verifiers), label="new stakes")
                both(spec, proto, lambda fc, s=stakes: fc.set_stakes(s))
        elif roll < 80:  # malformed or premature input: both refuse it, nothing changes
            bad = data.draw(
                st.sampled_from(
                    [
                        Commit(b"orphan", (b"missing",)),
                        Commit(b"loop", ()),
                        Attestation(b"x", verifiers[0], 10**6, b"missing"),
                        Attestation(
                            b"x",
                            verifiers[0],
                            10**6,
                            GENESIS,
                            VerdictClaim(commits[-1], b"missing", Verdict.IMPROVED, 1),
                        ),
                    ]
                ),
                label="bad input",
            )
            if isinstance(bad, Commit):
                both(spec, proto, lambda fc, c=bad: fc.add_commit(c))
            else:
                both(spec, proto, lambda fc, a=bad: fc.add_attestation(a))
        else:  # the node computes its head
            update = both(spec, proto, lambda fc: fc.update_head())
            assert update.finalized in parents
            after_head = True
        assert_same(spec, proto, commits, after_head)

    both(spec, proto, lambda fc: fc.update_head())
    assert_same(spec, proto, commits, after_head=True)
    event(f"finalized depth >= 2: {spec.canonical_chain().index(spec.finalized) >= 2}")
    event(f"head depth >= 3: {len(spec.canonical_chain()) >= 4}")
    event(f"some commit rejected: {bool(spec.rejected())}")
    event(f"some merge accepted: {any(len(parents[c]) > 1 for c in spec.accepted())}")
    event(f"some equivocator: {bool(spec.equivocators())}")


PRUNING = st.sampled_from([0, 1, 3, PRUNE_THRESHOLD_NODES])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), prune_threshold=PRUNING)
def test_proto_array_matches_reference_on_short_scenarios(
    data: st.DataObject, prune_threshold: int
) -> None:
    run_scenario(data, data.draw(st.integers(1, 40), label="steps"), prune_threshold)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(data=st.data(), prune_threshold=PRUNING)
def test_proto_array_matches_reference_on_long_scenarios(
    data: st.DataObject, prune_threshold: int
) -> None:
    run_scenario(data, 400, prune_threshold)
