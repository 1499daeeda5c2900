"""Unit tests of the contracts' rules (docs/PROTOCOL.md, "Contracts"), one story per rule.

Genesis (tests/test_contracts_support.py): key0…key3 bonded 100/200/300/400 at epoch 0; key4
and key5 hold nothing. Default constants unless a test says otherwise.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from contracts import (
    DEFAULT_PARAMS,
    PPM,
    ChainOrderError,
    ChallengeStatus,
    ContractParams,
    Ledger,
    LedgerState,
    ParamsError,
    TxStatus,
    WrongTargetError,
    compute_state,
    get_committee_seed,
    sample_committee,
)
from protocol import examples
from protocol.cid import CID
from protocol.objects import Attestation
from tests.test_contracts_support import (
    KEYS,
    PK,
    TARGET,
    Chain,
    attest,
    bond,
    challenge,
    check_invariants,
    evidence,
    ruling,
    unbond,
)


def fold(chain: Chain, **sets: object) -> LedgerState:
    """compute_state, the Ledger fed everything in one go, and the invariants, in one call."""
    state = compute_state(TARGET, chain.commits, **sets)  # type: ignore[arg-type]
    ledger = Ledger(TARGET)
    for name, method in (("attestations", ledger.apply_attestation),
                         ("evidence", ledger.apply_evidence),
                         ("rulings", ledger.apply_ruling),
                         ("challenges", ledger.apply_challenge)):
        for item in sets.get(name, ()):  # type: ignore[attr-defined]
            method(item)
    ledger.apply_final_commits(chain.commits)
    assert ledger.state == state
    check_invariants(state)
    return state


def tx_status(state: LedgerState, commit_index: int, chain: Chain, tx_index: int = 0
              ) -> TxStatus:
    return state.tx_results[(chain.commits[commit_index].cid, tx_index)].status


# ---------------------------------------------------------------------------------------------
# Genesis, epochs, stake transactions
# ---------------------------------------------------------------------------------------------


def test_genesis_validators_are_bonded_at_epoch_zero():
    state = fold(Chain())
    assert state.stakes_at(0) == {PK[i]: 100 * (i + 1) for i in range(4)}
    assert state.total_balance() == state.genesis_stake == 1000
    assert (state.epoch, state.head, state.height) == (0, TARGET.cid, 0)


def test_commit_epochs_never_run_backwards():
    chain = Chain()
    chain.add(5)
    chain.add(0, time_ms=TARGET.genesis_time_ms - 10**9)  # before genesis and its parent
    chain.add(7)
    ledger = Ledger(TARGET)
    ledger.apply_final_commits(chain.commits)
    assert ledger.epoch == 7
    ledger2 = Ledger(TARGET)
    ledger2.apply_final_commits(chain.commits[:2])
    assert ledger2.epoch == 5 and ledger2.state.epoch == 5


def test_bond_becomes_effective_exactly_at_bond_delay_not_one_epoch_before():
    chain = Chain()
    first = chain.add(1)  # key4 proposes a 3% improvement: 30 free
    chain.add(5, [bond(4, 20, 0)])
    attestations = [attest(3, first, ratio_ppm=970_000)]
    state = fold(chain, attestations=attestations)
    assert state.account(PK[4]).free == 10
    assert PK[4] not in state.stakes_at(5)
    assert PK[4] not in state.stakes_at(5 + DEFAULT_PARAMS.bond_delay_epochs - 1)
    assert state.stakes_at(5 + DEFAULT_PARAMS.bond_delay_epochs)[PK[4]] == 20
    chain.add(6)
    assert fold(chain, attestations=attestations).account(PK[4]).pending == [(20, 7)]
    chain.add(7)
    matured = fold(chain, attestations=attestations).account(PK[4])
    assert (matured.bonded, matured.pending) == (20, [])


def test_unbond_leaves_the_snapshot_at_once_and_is_released_after_the_delay():
    chain = Chain()
    chain.add(2, [unbond(1, 50, 0)])
    state = fold(chain)
    assert state.stakes_at(2)[PK[1]] == 150
    assert state.account(PK[1]).unbonding == [(50, 10)]
    chain.add(9)
    assert fold(chain).account(PK[1]).free == 0
    chain.add(10)
    released = fold(chain).account(PK[1])
    assert (released.free, released.bonded, released.unbonding) == (50, 150, [])


def test_tx_with_a_nonce_out_of_order_is_a_noop_and_keeps_the_nonce():
    chain = Chain()
    chain.add(1, [unbond(0, 10, 1)])
    chain.add(2, [unbond(0, 10, 0), unbond(0, 10, 1)])
    state = fold(chain)
    assert tx_status(state, 0, chain) == TxStatus.BAD_NONCE
    assert tx_status(state, 1, chain, 0) == TxStatus.APPLIED
    assert tx_status(state, 1, chain, 1) == TxStatus.APPLIED
    assert state.account(PK[0]).bonded == 80 and state.next_nonce(PK[0]) == 2


def test_tx_with_insufficient_balance_is_a_noop_that_consumes_its_nonce():
    chain = Chain()
    broke = bond(1, 10, 0)  # key1 has no free balance
    chain.add(1, [broke, unbond(0, 101, 0)])
    chain.add(2, [broke])  # the same signed tx again: its nonce is spent
    state = fold(chain)
    assert tx_status(state, 0, chain, 0) == TxStatus.INSUFFICIENT_FREE
    assert tx_status(state, 0, chain, 1) == TxStatus.INSUFFICIENT_UNLOCKED
    assert tx_status(state, 1, chain) == TxStatus.BAD_NONCE
    assert state.next_nonce(PK[1]) == 1 and state.next_nonce(PK[0]) == 1
    assert state.stakes_at(2) == {PK[i]: 100 * (i + 1) for i in range(4)}


def test_pending_bonds_cannot_be_unbonded():
    chain = Chain()
    first = chain.add(1)
    chain.add(2, [bond(4, 30, 0), unbond(4, 30, 1)])
    state = fold(chain, attestations=[attest(3, first)])
    assert tx_status(state, 1, chain, 1) == TxStatus.INSUFFICIENT_UNLOCKED


def test_commits_must_arrive_in_chain_order_and_objects_of_other_targets_are_refused():
    chain = Chain()
    chain.add(1)
    second = chain.add(2)
    ledger = Ledger(TARGET)
    with pytest.raises(ChainOrderError):
        ledger.apply_final_commit(second)
    ledger.apply_final_commits(chain.commits)
    ledger.apply_final_commit(second)  # the same commit again changes nothing
    assert ledger.state.height == 2
    other = examples.target(3)
    stray = Attestation.create(KEYS[1], target=other.cid, seq=0, prev=None, epoch=0,
                               time_ms=other.genesis_time_ms, head=other.cid)
    with pytest.raises(WrongTargetError):
        ledger.apply_attestation(stray)


def test_params_are_checked():
    with pytest.raises(ParamsError):
        ContractParams(whistleblower_ppm=PPM + 1)
    with pytest.raises(ParamsError):
        ContractParams(bond_delay_epochs=0)


# ---------------------------------------------------------------------------------------------
# Slashing
# ---------------------------------------------------------------------------------------------


def test_equivocation_slashes_half_ejects_and_pays_the_whistleblower():
    chain = Chain()
    chain.add(3)
    state = fold(chain, evidence=[evidence(1, 5, 2)])
    offender = state.account(PK[1])
    assert offender.ejected and offender.bonded == 0
    assert offender.unbonding == [(100, 2 + DEFAULT_PARAMS.unbond_delay_epochs)]
    assert state.account(PK[5]).free == 10
    assert state.burned == 90
    (slash,) = state.slashes
    assert (slash.offender, slash.reason, slash.epoch, slash.amount) == (PK[1], "equivocation",
                                                                         2, 100)
    assert PK[1] not in state.stakes_at(3)


def test_unbonding_cannot_escape_a_slash_anchored_before_its_release():
    chain = Chain()
    chain.add(1, [unbond(1, 150, 0)])  # released at epoch 9
    chain.add(20)
    state = fold(chain, evidence=[evidence(1, 5, 5)])
    # 150 unbonding -> 75, 50 bonded -> 25 (ejected, released at 13): 100 slashed.
    assert state.slashes[0].amount == 100
    assert state.account(PK[1]).free == 100


def test_late_evidence_applies_at_its_anchor_exactly_as_if_it_had_come_first():
    chain = Chain()
    chain.add(1, [unbond(1, 150, 0)])
    chain.add(20)
    late = Ledger(TARGET)
    late.apply_final_commits(chain.commits)
    assert late.state.account(PK[1]).free == 150  # released, as far as this node knows
    late.apply_evidence(evidence(1, 5, 5))
    early = Ledger(TARGET)
    early.apply_evidence(evidence(1, 5, 5))
    early.apply_final_commits(chain.commits)
    assert late.state == early.state
    assert late.state.account(PK[1]).free == 100


def test_evidence_anchored_at_the_release_epoch_no_longer_reaches_released_stake():
    chain = Chain()
    chain.add(1, [unbond(1, 150, 0)])
    chain.add(20)
    state = fold(chain, evidence=[evidence(1, 5, 9)])
    assert state.slashes[0].amount == 25  # only the 50 still bonded
    assert state.account(PK[1]).free == 150 + 25


def test_double_evidence_slashes_once_and_the_first_by_anchor_then_cid_is_counted():
    chain = Chain()
    chain.add(6)
    later, earlier = evidence(1, 5, 4, salt=0), evidence(1, 6, 2, salt=1)
    state = fold(chain, evidence=[later, earlier])
    assert len(state.slashes) == 1 and state.slashes[0].source == earlier.cid
    assert state.account(PK[6]).free == 10 and state.account(PK[5]).free == 0
    same_anchor = [evidence(1, 5, 2, salt=7), evidence(1, 6, 2, salt=8)]
    winner = min(same_anchor, key=lambda e: bytes(e.cid))
    state = fold(chain, evidence=same_anchor)
    assert [s.source for s in state.slashes] == [winner.cid]


def test_an_offender_reporting_itself_earns_nothing():
    chain = Chain()
    chain.add(3)
    state = fold(chain, evidence=[evidence(1, 1, 2)])
    assert state.slashes[0].paid == () and state.burned == 100
    assert state.account(PK[1]).free == 0


def test_evidence_beyond_the_chain_waits_but_the_offender_leaves_snapshots_at_once():
    chain = Chain()
    chain.add(3)
    state = fold(chain, evidence=[evidence(2, 5, 10)])
    assert state.slashes == [] and state.accused == {PK[2]}
    assert PK[2] not in state.stakes_at(3)
    assert state.account(PK[2]).bonded == 300
    chain.add(10)
    assert fold(chain, evidence=[evidence(2, 5, 10)]).slashes[0].epoch == 10


def test_an_ejected_verifiers_stake_never_returns_to_fork_choice():
    chain = Chain()
    chain.add(2)
    chain.add(20, [bond(1, 80, 0)])  # its 100 were released at 10; it bonds again
    state = fold(chain, evidence=[evidence(1, 5, 2)])
    assert tx_status(state, 1, chain) == TxStatus.APPLIED_EJECTED
    account = state.account(PK[1])
    assert account.ejected and account.unbonding == [(40, 28)]  # the bond was slashed 50%
    assert [s.reason for s in state.slashes] == ["equivocation", "bond_after_ejection"]
    for epoch in range(0, 60):
        assert PK[1] not in state.stakes_at(epoch)


def test_backdated_self_evidence_does_not_lower_the_slash():
    chain = Chain()
    first = chain.add(1, author=0)  # key0 earns 100 (a 10% improvement)
    chain.add(3, [bond(0, 100, 0)])  # effective at 5: key0 then has 200 at stake
    chain.add(8)
    verdicts = [attest(3, first, ratio_ppm=900_000)]
    honest = fold(chain, attestations=verdicts, evidence=[evidence(0, 5, 6)])
    gamed = fold(chain, attestations=verdicts,
                 evidence=[evidence(0, 5, 6), evidence(0, 6, 0, salt=1)])  # its own, epoch 0
    slashed = [sum(s.amount for s in st.slashes if s.offender == PK[0]) for st in (honest, gamed)]
    assert slashed == [100, 100]
    assert gamed.slashes[0].epoch == 0 and gamed.slashes[1].reason == "bond_after_ejection"


# ---------------------------------------------------------------------------------------------
# Challenges
# ---------------------------------------------------------------------------------------------


def reference_committee(candidates: dict[bytes, int], seed: bytes, size: int) -> list[bytes]:
    """docs/PROTOCOL.md §Challenges, committee sampling, re-implemented from the text."""
    pool = sorted(candidates.items())
    out, c = [], 0
    while pool and len(out) < size:
        w = sum(s for _, s in pool)
        while True:
            x = int.from_bytes(hashlib.sha256(seed + c.to_bytes(8, "big")).digest(), "big")
            c += 1
            if x < 2**256 - 2**256 % w:
                break
        r, acc = x % w, 0
        for i, (k, s) in enumerate(pool):
            acc += s
            if r < acc:
                out.append(k)
                pool.pop(i)
                break
    return out


def test_committee_sampling_is_reproducible_from_the_written_algorithm():
    anchor = CID.for_bytes("messagepack", b"anchor")
    att = attest(1)
    seed = get_committee_seed(anchor, att.cid)
    assert seed == hashlib.sha256(b"poi/1/committee" + bytes(anchor) + bytes(att.cid)).digest()
    candidates = {PK[i]: 10 * (i + 1) for i in range(8)}
    for size in (1, 3, 5, 8, 20):
        members = sample_committee(candidates, seed, size)
        assert list(members) == reference_committee(candidates, seed, size)
        assert len(set(members)) == len(members) == min(size, 8)
    # known answer: another implementation must draw these members (keys 0..7 of examples.key)
    assert [PK.index(m) for m in sample_committee(candidates, seed, 5)] == KNOWN_COMMITTEE


KNOWN_COMMITTEE = [7, 6, 5, 3, 4]
"""For the example target as encoded today (its CID names the attestation, and so the seed)."""


def test_committee_sampling_is_stake_weighted():
    stakes = {PK[i]: 100 * (i + 1) for i in range(4)}
    total, draws = sum(stakes.values()), 4000
    counts = dict.fromkeys(stakes, 0)
    for n in range(draws):
        (member,) = sample_committee(stakes, hashlib.sha256(b"s%d" % n).digest(), 1)
        counts[member] += 1
    for key, stake in stakes.items():
        expected = draws * stake / total
        sigma = (draws * stake / total * (1 - stake / total)) ** 0.5
        assert abs(counts[key] - expected) < 4 * sigma, (counts, key)
    # without replacement, a heavy account is in a 2-member committee far more often
    pairs = [sample_committee(stakes, hashlib.sha256(b"p%d" % n).digest(), 2) for n in range(800)]
    assert all(len(set(p)) == 2 for p in pairs)
    assert sum(PK[3] in p for p in pairs) > 2 * sum(PK[0] in p for p in pairs)


def challenge_world(claim_result: str = "improved", bond_amount: int = 100):
    """key4 earns 500 free at epoch 1; key1 attests `claim_result` on that commit at epoch 1;
    the challenge anchor is the commit at epoch 2; key4 challenges."""
    chain = Chain()
    first = chain.add(1)
    anchor = chain.add(2)
    payday = attest(3, first, ratio_ppm=500_000, seq=0, epoch=1)
    disputed = attest(1, first, result=claim_result, epoch=1)
    dispute = challenge(4, disputed, anchor.cid, bond_amount)
    return chain, [payday, disputed], dispute


def test_committee_excludes_challenger_and_verifier_and_takes_all_when_few():
    chain, atts, dispute = challenge_world()
    state = fold(chain, attestations=atts, challenges=[dispute])
    record = state.challenges[dispute.cid]
    assert record.status == ChallengeStatus.OPEN
    assert sorted(record.committee) == sorted([(PK[0], 100), (PK[2], 300), (PK[3], 400)])
    assert state.account(PK[4]).escrowed == 100 and state.account(PK[4]).free == 400


def test_a_challenge_against_an_honest_attestation_costs_the_challenger():
    chain, atts, dispute = challenge_world()
    rulings = [ruling(2, dispute, True), ruling(3, dispute, True), ruling(0, dispute, False)]
    state = fold(chain, attestations=atts, challenges=[dispute], rulings=rulings)
    record = state.challenges[dispute.cid]
    assert record.status == ChallengeStatus.CHALLENGER_LOST and record.gate_passed is True
    assert state.account(PK[4]).free == 400 and state.account(PK[4]).escrowed == 0
    # the loser pays 10% of the bond to the majority, by weight: 10·300//700, 10·400//700
    assert record.committee_rewards == ((PK[2], 4), (PK[3], 5)) or sorted(
        record.committee_rewards) == sorted([(PK[2], 4), (PK[3], 5)])
    assert record.burned == 91
    assert not state.account(PK[1]).ejected and state.slashes == []


def test_a_winning_challenge_slashes_and_ejects_the_verifier():
    chain, atts, dispute = challenge_world()
    rulings = [ruling(2, dispute, False), ruling(3, dispute, False)]
    state = fold(chain, attestations=atts, challenges=[dispute], rulings=rulings)
    record = state.challenges[dispute.cid]
    assert record.status == ChallengeStatus.CHALLENGER_WON
    assert (record.slashed, record.challenger_reward, record.burned) == (100, 20, 71)
    assert state.account(PK[4]).free == 520  # bond back + 20% of the slash
    verifier = state.account(PK[1])
    assert verifier.ejected and PK[1] not in state.stakes_at(2)
    assert state.slashes[0].reason == "false_gate_claim"


def test_a_false_gate_failed_claim_is_challengeable_too():
    chain, atts, dispute = challenge_world(claim_result="gate_failed")
    rulings = [ruling(2, dispute, True), ruling(3, dispute, True)]
    state = fold(chain, attestations=atts, challenges=[dispute], rulings=rulings)
    assert state.challenges[dispute.cid].status == ChallengeStatus.CHALLENGER_WON


def test_a_verifier_is_slashed_for_false_gate_claims_once():
    chain, atts, dispute = challenge_world()
    again = challenge(4, dispute.attestation, dispute.anchor, 100, nonce=1)
    rulings = [ruling(m, c, False) for c in (dispute, again) for m in (2, 3)]
    state = fold(chain, attestations=atts, challenges=[dispute, again], rulings=rulings)
    records = sorted(state.challenges.values(), key=lambda r: bytes(r.challenge))
    assert [r.status for r in records] == [ChallengeStatus.CHALLENGER_WON] * 2
    assert sorted(r.slashed for r in records) == [0, 100]
    assert len(state.slashes) == 1 and state.account(PK[4]).free == 520


def test_bond_short_of_free_locks_bonded_stake_which_counts_but_cannot_be_unbonded():
    chain, atts, _ = challenge_world()
    dispute = challenge(2, atts[1], chain.commits[1].cid, 100)  # key2: no free balance
    chain.add(3, [unbond(2, 250, 0), unbond(2, 200, 1)])
    state = fold(chain, attestations=atts, challenges=[dispute])
    account = state.account(PK[2])
    assert state.challenges[dispute.cid].status == ChallengeStatus.OPEN
    assert (account.bonded, account.locked) == (100, 100)
    assert state.stakes_at(3)[PK[2]] == 100
    assert tx_status(state, 2, chain, 0) == TxStatus.INSUFFICIENT_UNLOCKED
    assert tx_status(state, 2, chain, 1) == TxStatus.APPLIED
    lost = fold(chain, attestations=atts, challenges=[dispute],
                rulings=[ruling(0, dispute, True), ruling(3, dispute, True)])
    forfeited = lost.account(PK[2])  # 300 − 100 forfeited; then 200 unbonded
    assert (forfeited.bonded, forfeited.locked, forfeited.unbonding) == (0, 0, [(200, 11)])


def test_challenges_that_break_a_rule_are_noops():
    chain, atts, dispute = challenge_world()
    unfunded = challenge(5, atts[1], dispute.anchor, 100)
    small = challenge(4, atts[1], dispute.anchor, DEFAULT_PARAMS.min_challenge_bond - 1)
    wrong_anchor = challenge(4, atts[1], chain.commits[0].cid, 100)  # epoch 1 is not > 1
    unknown = challenge(4, atts[1], CID.for_bytes("messagepack", b"not final"), 100)
    ledger = Ledger(TARGET)
    for item in (*atts, unfunded, small, wrong_anchor, unknown):
        (ledger.apply_attestation if hasattr(item, "verifier") else ledger.apply_challenge)(item)
    ledger.apply_final_commits(chain.commits)
    statuses = [ledger.challenge_status(c) for c in (unfunded, small, wrong_anchor, unknown)]
    assert statuses == [ChallengeStatus.UNFUNDED, ChallengeStatus.BOND_TOO_SMALL,
                        ChallengeStatus.INVALID_ANCHOR, ChallengeStatus.WAITING_ANCHOR]
    assert all(ledger.committee_for(c) == () for c in (unfunded, small, wrong_anchor, unknown))
    assert ledger.state.account(PK[4]).escrowed == 0
    assert ledger.challenge_anchor(atts[1]) == dispute.anchor
    assert ledger.challenge_anchor(attest(1, epoch=2)) is None


def test_a_challenge_nobody_can_judge_is_a_noop():
    chain, atts, dispute = challenge_world()
    ejections = [evidence(i, 5, 0, salt=i) for i in (0, 2, 3)]  # only the verifier keeps stake
    verdicts = [attest(1, chain.commits[0], ratio_ppm=500_000, seq=1), atts[1]]  # key4 earns
    state = fold(chain, attestations=verdicts, challenges=[dispute], evidence=ejections)
    assert state.challenges[dispute.cid].status == ChallengeStatus.NO_COMMITTEE
    assert state.account(PK[4]).free == 500 and state.account(PK[4]).escrowed == 0


def test_rulings_need_a_strict_stake_majority_and_a_member_ruling_both_ways_counts_for_neither():
    chain, atts, dispute = challenge_world()  # committee weights 100 / 300 / 400 (total 800)
    rulings = [ruling(3, dispute, False), ruling(3, dispute, True, "other"),  # both ways
               ruling(1, dispute, False), ruling(5, dispute, False),  # not members
               ruling(2, dispute, False), ruling(0, dispute, False)]  # 400 of 800: not > half
    state = fold(chain, attestations=atts, challenges=[dispute], rulings=rulings)
    record = state.challenges[dispute.cid]
    assert record.status == ChallengeStatus.OPEN
    assert (record.votes_failed, record.votes_passed) == (400, 0)


def test_late_rulings_settle_the_challenge_at_its_anchor():
    chain, atts, dispute = challenge_world()
    chain.add(5, [bond(4, 450, 0)])  # needs the bond back: only 400 free while it is escrowed
    ledger = Ledger(TARGET)
    for item in atts:
        ledger.apply_attestation(item)
    ledger.apply_challenge(dispute)
    ledger.apply_final_commits(chain.commits)
    assert tx_status(ledger.state, 2, chain) == TxStatus.INSUFFICIENT_FREE
    assert PK[3] in ledger.committee_for(dispute)
    for member in (2, 3):
        ledger.apply_ruling(ruling(member, dispute, False))
    assert ledger.challenge_status(dispute) == ChallengeStatus.CHALLENGER_WON
    assert tx_status(ledger.state, 2, chain) == TxStatus.APPLIED
    assert ledger.state == fold(chain, attestations=atts, challenges=[dispute],
                                rulings=[ruling(m, dispute, False) for m in (2, 3)])


# ---------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------


def test_proposer_reward_is_proportional_to_the_verified_improvement():
    chain = Chain()
    commits = [chain.add(1, author=4), chain.add(2, author=5), chain.add(3, author=6),
               chain.add(4, author=7)]
    verdicts = [attest(3, commits[0], ratio_ppm=970_000), attest(3, commits[1], ratio_ppm=940_000),
                attest(3, commits[2], result="not_improved", ratio_ppm=1_000_000),
                attest(3, commits[3], ratio_ppm=1_010_000)]
    state = fold(chain, attestations=verdicts)
    assert [state.account(PK[i]).free for i in (4, 5, 6, 7)] == [30, 60, 0, 0]
    assert [state.rewards[c.cid].improvement_ppm for c in commits] == [30_000, 60_000, 0, 0]
    assert state.minted == 30 + 60 + 3 * 8  # the improved verdicts also pay key3 8 each


def test_verified_ratio_is_the_stake_weighted_median_against_the_first_parent():
    chain = Chain()
    commit = chain.add(1)
    elsewhere = CID.for_bytes("messagepack", b"not a parent")
    verdicts = [attest(0, commit, ratio_ppm=900_000), attest(1, commit, ratio_ppm=950_000),
                attest(3, commit, ratio_ppm=990_000),
                attest(2, commit, ratio_ppm=100_000, parent=elsewhere)]  # ignored
    state = fold(chain, attestations=verdicts)
    rewards = state.rewards[commit.cid]
    # weights 100 / 200 / 400: 2·(100+200) < 700 ≤ 2·700, so the median is 990,000
    assert rewards.verified_ratio_ppm == 990_000 and rewards.proposer_reward == 10


def test_verifiers_share_the_pool_by_stake_and_only_improved_verdicts_earn():
    chain = Chain()
    commit = chain.add(1)
    verdicts = [attest(0, commit), attest(1, commit), attest(3, commit),
                attest(2, commit, result="not_improved")]
    rewards = fold(chain, attestations=verdicts).rewards[commit.cid]
    assert dict(rewards.verifier_rewards) == {PK[0]: 2, PK[1]: 4, PK[3]: 8}


def test_a_verifier_with_conflicting_verdicts_on_a_commit_earns_nothing():
    chain = Chain()
    commit = chain.add(1)
    verdicts = [attest(3, commit, seq=0), attest(3, commit, result="gate_failed", seq=1),
                attest(1, commit, ratio_ppm=950_000, seq=0),
                attest(1, commit, ratio_ppm=960_000, seq=1)]  # a refinement: the latest counts
    rewards = fold(chain, attestations=verdicts).rewards[commit.cid]
    assert dict(rewards.verifier_rewards) == {PK[1]: 4}
    assert rewards.verified_ratio_ppm == 960_000


def test_late_verdicts_on_a_final_commit_pay_when_they_arrive():
    chain = Chain()
    commit = chain.add(1)
    chain.add(2)
    ledger = Ledger(TARGET)
    ledger.apply_final_commits(chain.commits)
    assert ledger.state.minted == 0
    ledger.apply_attestation(attest(3, commit))
    assert ledger.state.account(PK[4]).free == 30
    assert ledger.state == fold(chain, attestations=[attest(3, commit)])


# ---------------------------------------------------------------------------------------------
# Performance
# ---------------------------------------------------------------------------------------------


def test_a_full_recompute_over_thousands_of_final_commits_is_well_under_a_second():
    chain = Chain()
    verdicts = []
    for n in range(3000):
        commit = chain.add(n // 4 + 1, [unbond(n % 4, 1, n // 4)], author=4 + n % 2)
        verdicts.append(attest(n % 4, commit, ratio_ppm=990_000))
    ledger = Ledger(TARGET)
    for item in verdicts:
        ledger.apply_attestation(item)
    ledger.apply_final_commits(chain.commits)
    started = time.perf_counter()
    state = ledger.state
    elapsed = time.perf_counter() - started
    check_invariants(state)
    assert state.height == 3000 and state.minted > 0
    assert elapsed < 0.5, f"full fold over 3000 commits took {elapsed:.3f} s"
    ledger.apply_attestation(attest(3, chain.commits[0], seq=1))  # late: refold from the start
    started = time.perf_counter()
    assert ledger.state == compute_state(TARGET, chain.commits,
                                         attestations=[*verdicts, attest(3, chain.commits[0],
                                                                         seq=1)])
    assert time.perf_counter() - started < 1.5
