"""poi's contracts: the stake ledger, slashing, challenges and rewards (docs/PROTOCOL.md,
"Contracts: stake, slashing, challenges, rewards").

Pure, deterministic state machines: integers only, no clock, no I/O, no randomness but the
committee seed derived from the chain. The ledger state is a pure function of the target (its
genesis), the finalized chain in order, and the *sets* of known evidence, challenges, rulings
and verdict attestations — never of the order or the moment they arrived — so every honest node
that knows the same things holds the same balances.

Modules: `params` (the constants), `ledger` (accounts, epochs, stake transactions, snapshots),
`slashing` (evidence, slashes, ejection), `challenges` (anchor, committee sampling, rulings,
settlement), `rewards` (proposer and verifier rewards), `state` (the fold: `compute_state`, the
reference, and `Ledger`, the incremental version a node holds).

How a node drives it (callers validate each object and check its signatures first; the ledger
does neither)::

    ledger = Ledger(target)                                  # genesis stakes bonded at epoch 0
    fork_choice = ProtoArrayForkChoice(target.cid, ledger.stakes_at(0), target.quorum_ppm)

    # at the start of every epoch (by the node's clock):
    fork_choice.set_stakes(ledger.stakes_at(epoch))

    # after every fork-choice update:
    update = fork_choice.update_head()
    ledger.apply_final_commits(store.commit(cid) for cid in update.newly_finalized)

    # on gossip, in whatever order things arrive (before or after what they refer to):
    ledger.apply_attestation(attestation)                    # every attestation; verdicts count
    fork_choice.mark_equivocator(evidence.offender); ledger.apply_evidence(evidence)
    ledger.apply_challenge(challenge)
    ledger.apply_ruling(ruling)

    # as a committee member (re-check whenever the ledger changes, until the challenge settles):
    if my_key in ledger.committee_for(challenge) and \
            ledger.challenge_status(challenge) == ChallengeStatus.OPEN:
        passed = run_gate(challenge.attestation.verdict.gate_seed, ...)
        ruling = Ruling.create(key, target=target.cid, challenge=challenge.cid,
                               gate_passed=passed, toolchain=toolchain)

    # as a challenger: the anchor is fixed by the attestation (None: wait for finality)
    anchor = ledger.challenge_anchor(attestation)
    challenge = Challenge.create(key, attestation, anchor=anchor, bond=bond, nonce=n)

    # as a wallet / proposer including stake transactions:
    StakeTx.create(key, target=target.cid, op="bond", amount=a, nonce=ledger.state.next_nonce(pk))

    # reading (HTTP API): ledger.state.accounts, .slashes, .challenges, .rewards, .tx_results,
    # .minted, .burned; ledger.accused() after a restart feeds mark_equivocator again.

A restarted node rebuilds the ledger by applying its finalized chain and the objects in its
store, in any order: the result is the same.
"""

from contracts.challenges import (
    COMMITTEE_SEED_DOMAIN,
    ChallengeRecord,
    ChallengeStatus,
    challenge_status,
    committee_for,
    get_challenge_anchor_index,
    get_committee_seed,
    sample_committee,
)
from contracts.errors import ChainOrderError, ContractError, WrongTargetError
from contracts.ledger import (
    Account,
    Entry,
    LedgerState,
    Slash,
    TxResult,
    TxStatus,
    get_commit_epoch,
    get_stake_snapshot,
)
from contracts.params import (
    BOND_DELAY_EPOCHS,
    CHALLENGE_SLASH_PPM,
    CHALLENGER_REWARD_PPM,
    COMMITTEE_REWARD_PPM,
    COMMITTEE_SIZE,
    DEFAULT_PARAMS,
    EQUIVOCATION_SLASH_PPM,
    MIN_CHALLENGE_BOND,
    PPM,
    PROPOSER_REWARD_PER_UNIT_IMPROVEMENT,
    UNBOND_DELAY_EPOCHS,
    VERIFIER_REWARD_POOL,
    WHISTLEBLOWER_PPM,
    ContractParams,
    ParamsError,
)
from contracts.rewards import CommitRewards, get_counted_verdicts, get_verified_ratio
from contracts.slashing import get_counted_evidence, get_evidence_anchor
from contracts.state import Ledger, LedgerInputs, compute_state

__all__ = [
    "BOND_DELAY_EPOCHS",
    "CHALLENGER_REWARD_PPM",
    "CHALLENGE_SLASH_PPM",
    "COMMITTEE_REWARD_PPM",
    "COMMITTEE_SEED_DOMAIN",
    "COMMITTEE_SIZE",
    "DEFAULT_PARAMS",
    "EQUIVOCATION_SLASH_PPM",
    "MIN_CHALLENGE_BOND",
    "PPM",
    "PROPOSER_REWARD_PER_UNIT_IMPROVEMENT",
    "UNBOND_DELAY_EPOCHS",
    "VERIFIER_REWARD_POOL",
    "WHISTLEBLOWER_PPM",
    "Account",
    "ChainOrderError",
    "ChallengeRecord",
    "ChallengeStatus",
    "CommitRewards",
    "ContractError",
    "ContractParams",
    "Entry",
    "Ledger",
    "LedgerInputs",
    "LedgerState",
    "ParamsError",
    "Slash",
    "TxResult",
    "TxStatus",
    "WrongTargetError",
    "challenge_status",
    "committee_for",
    "compute_state",
    "get_challenge_anchor_index",
    "get_commit_epoch",
    "get_committee_seed",
    "get_counted_evidence",
    "get_counted_verdicts",
    "get_evidence_anchor",
    "get_stake_snapshot",
    "get_verified_ratio",
    "sample_committee",
]
