"""Property tests of the contracts (docs/PROTOCOL.md, "Contracts", §The fold, §Conservation).

Random finalized chains carrying stake transactions, with random verdict attestations, evidence,
challenges and rulings — all real signed objects — delivered to two `Ledger`s in two different
valid orders (the non-chain objects permuted and interleaved anywhere with the chain's commits,
which keep their order), with the state read at random moments in between. Both ledgers must end
in the same state as `compute_state` over the same sets, and that state must conserve stake.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    ContractParams,
    Ledger,
    LedgerState,
    compute_state,
    get_challenge_anchor_index,
)
from contracts.ledger import get_chain_epochs
from protocol.objects import Attestation, Challenge, Commit, Evidence, Ruling, StakeTx
from tests.test_contracts_support import (
    KEYS,
    PK,
    TARGET,
    Chain,
    attest,
    challenge,
    check_invariants,
    evidence,
    ruling,
)

ACCOUNTS = 6  # keys 0-3 hold genesis stake, 4-5 start empty
Event = Attestation | Evidence | Challenge | Ruling


params = st.builds(
    ContractParams,
    bond_delay_epochs=st.integers(1, 3), unbond_delay_epochs=st.integers(1, 4),
    equivocation_slash_ppm=st.sampled_from([0, 333_333, 500_000, 1_000_000]),
    challenge_slash_ppm=st.sampled_from([0, 500_000, 1_000_000]),
    whistleblower_ppm=st.sampled_from([0, 100_000, 1_000_000]),
    challenger_reward_ppm=st.sampled_from([0, 200_000, 1_000_000]),
    committee_reward_ppm=st.sampled_from([0, 100_000, 1_000_000]),
    committee_size=st.integers(1, 5), min_challenge_bond=st.integers(1, 20),
    proposer_reward_per_unit_improvement=st.sampled_from([0, 1_000, 10_000]),
    verifier_reward_pool=st.sampled_from([0, 20, 1_000]))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Commit], list[Event]]:
    chain, nonces, epoch = Chain(), [0] * ACCOUNTS, 0
    for _ in range(draw(st.integers(0, 10))):
        epoch = max(0, epoch + draw(st.integers(-1, 3)))  # a commit may claim an earlier time
        txs: list[StakeTx] = []
        for _ in range(draw(st.integers(0, 3))):
            account = draw(st.integers(0, ACCOUNTS - 1))
            nonce = nonces[account] if draw(st.integers(0, 4)) else draw(st.integers(0, 3))
            nonces[account] = max(nonces[account], nonce + 1)
            tx = StakeTx.create(KEYS[account], target=TARGET.cid,
                                op=draw(st.sampled_from(["bond", "unbond"])),
                                amount=draw(st.integers(1, 250)), nonce=nonce)
            if all(tx.cid != other.cid for other in txs):
                txs.append(tx)
        chain.add(epoch, txs, author=draw(st.integers(0, ACCOUNTS - 1)))
    events: list[Event] = []
    horizon = epoch + 3
    attestations: list[Attestation] = []
    if chain.commits:
        for _ in range(draw(st.integers(0, 10))):
            attestations.append(attest(
                draw(st.integers(0, ACCOUNTS - 1)), draw(st.sampled_from(chain.commits)),
                result=draw(st.sampled_from(["improved", "improved", "not_improved",
                                             "gate_failed", "timeout"])),
                ratio_ppm=draw(st.integers(800_000, 1_050_000)), seq=draw(st.integers(0, 2)),
                epoch=draw(st.integers(0, horizon if not draw(st.integers(0, 5))
                                       else max(0, epoch - 1)))))
    events += attestations
    for salt in range(draw(st.integers(0, 3))):
        events.append(evidence(draw(st.integers(0, ACCOUNTS - 1)),
                               draw(st.integers(0, ACCOUNTS - 1)),
                               draw(st.integers(0, horizon)), draw(st.integers(0, horizon)),
                               salt=salt))
    disputable = [a for a in attestations
                  if a.verdict is not None and a.verdict.gate_passed is not None]
    epochs = get_chain_epochs(TARGET, chain.commits)
    for nonce in range(draw(st.integers(0, 3)) if disputable else 0):
        disputed = draw(st.sampled_from(disputable))
        challenger = draw(st.integers(0, ACCOUNTS - 1).filter(
            lambda i, v=disputed.verifier: PK[i] != v))
        index = get_challenge_anchor_index(epochs, disputed)
        if index is None or not draw(st.integers(0, 4)):
            anchor = draw(st.sampled_from([TARGET.cid, *(c.cid for c in chain.commits)]))
        else:
            anchor = ([TARGET.cid] + [c.cid for c in chain.commits])[index]
        dispute = challenge(challenger, disputed, anchor, draw(st.integers(1, 300)), nonce)
        events.append(dispute)
        for member in range(ACCOUNTS):
            if draw(st.integers(0, 2)):
                events.append(ruling(member, dispute, draw(st.booleans())))
                if not draw(st.integers(0, 5)):
                    events.append(ruling(member, dispute, draw(st.booleans()), "other"))
    return chain.commits, events


@st.composite
def deliveries(draw: st.DrawFn, commits: list[Commit], events: list[Event]
               ) -> list[Commit | Event | None]:
    """One valid delivery order: the events permuted, the commits in chain order each after a
    random number of events; None marks a read of the state."""
    shuffled = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), min_size=len(commits),
                                max_size=len(commits))))
    order: list[Commit | Event | None] = []
    taken = 0
    for commit, cut in zip(commits, cuts, strict=True):
        order += shuffled[taken:cut]
        order.append(commit)
        taken = cut
    order += shuffled[taken:]
    for _ in range(draw(st.integers(0, 4))):
        order.insert(draw(st.integers(0, len(order))), None)
    return order


def deliver(order: list[Commit | Event | None], params: ContractParams) -> LedgerState:
    ledger = Ledger(TARGET, params)
    for item in order:
        if item is None:
            check_invariants(ledger.state)
        elif isinstance(item, Commit):
            ledger.apply_final_commit(item)
        elif isinstance(item, Attestation):
            ledger.apply_attestation(item)
        elif isinstance(item, Evidence):
            ledger.apply_evidence(item)
        elif isinstance(item, Challenge):
            ledger.apply_challenge(item)
        else:
            ledger.apply_ruling(item)
    return ledger.state


SEEN: Counter[str] = Counter()
"""What the generated scenarios exercised (printed by -s; a sanity check, not a test)."""


@settings(max_examples=300)
@given(st.data())
def test_delivery_order_never_changes_the_state_and_stake_is_conserved(data: st.DataObject):
    rules = data.draw(params)
    commits, events = data.draw(scenarios())
    first = deliver(data.draw(deliveries(commits, events)), rules)
    second = deliver(data.draw(deliveries(commits, events)), rules)
    reference = compute_state(
        TARGET, commits, params=rules,
        attestations=[e for e in events if isinstance(e, Attestation)],
        evidence=[e for e in events if isinstance(e, Evidence)],
        challenges=[e for e in events if isinstance(e, Challenge)],
        rulings=[e for e in events if isinstance(e, Ruling)])
    assert first == second == reference
    check_invariants(reference)
    # what the written rules allow to leave or enter: burned by slashes and forfeits, minted
    # by rewards — and nothing else
    assert reference.total_balance() == TARGET.total_genesis_stake + reference.minted \
        - reference.burned
    for key in reference.stakes_at(reference.epoch):
        assert key not in reference.accused and not reference.account(key).ejected
    SEEN.update(r.status.value for r in reference.challenges.values())
    SEEN.update(s.reason for s in reference.slashes)
    SEEN.update(r.status.value for r in reference.tx_results.values())
    SEEN["minted"] += reference.minted > 0
