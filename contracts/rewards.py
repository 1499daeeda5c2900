"""Rewards for a final commit: its proposer and the verifiers who agreed (docs/PROTOCOL.md,
"Contracts", §Rewards).

The verified ratio is the fork choice's improvement ratio (docs/PROTOCOL.md, "Fork choice and
finality", §Tie-break): the lower stake-weighted median of the `improved` verdicts measured
against the commit's first parent. The median itself is `dag.fork_choice.get_weighted_median`,
reused rather than restated; the weights here are the ledger's own snapshot at the commit's
epoch, so every node computes the same reward from the same set of attestations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contracts.ledger import LedgerState, credit_free, get_stake_snapshot, get_total_stake
from contracts.params import PPM, ContractParams
from dag.fork_choice import get_weighted_median
from protocol.cid import CID
from protocol.objects import IMPROVED, Attestation, Commit, Verdict


@dataclass(frozen=True)
class CommitRewards:
    """What one final commit minted: to its proposer and to its agreeing verifiers."""

    commit: CID
    epoch: int
    proposer: bytes
    verified_ratio_ppm: int | None
    improvement_ppm: int
    proposer_reward: int
    verifier_rewards: tuple[tuple[bytes, int], ...]

    @property
    def total(self) -> int:
        return self.proposer_reward + sum(amount for _, amount in self.verifier_rewards)


def get_counted_verdicts(attestations: Iterable[Attestation], commit: Commit
                         ) -> dict[bytes, Verdict]:
    """§Rewards: each verifier's counted verdict on `commit`, from the set of attestations.

    Only verdicts on `commit` measured against one of its parents count. Among a verifier's
    verdicts on it, the one from the attestation with the highest `seq` counts (the lowest CID
    among equal `seq`s); a verifier whose verdicts on it give different results (equivocation)
    has no counted verdict. Keys in ascending byte order.
    """
    by_verifier: dict[bytes, list[Attestation]] = {}
    for attestation in attestations:
        verdict = attestation.verdict
        if (verdict is not None and verdict.commit == commit.cid
                and verdict.parent in commit.parents):
            by_verifier.setdefault(attestation.verifier, []).append(attestation)
    counted: dict[bytes, Verdict] = {}
    for verifier in sorted(by_verifier):
        candidates = by_verifier[verifier]
        if len({a.verdict.result for a in candidates if a.verdict is not None}) != 1:
            continue
        latest = min(candidates, key=lambda a: (-a.seq, bytes(a.cid)))
        assert latest.verdict is not None
        counted[verifier] = latest.verdict
    return counted


def get_verified_ratio(counted: Mapping[bytes, Verdict], commit: Commit,
                       snapshot: Mapping[bytes, int]) -> int | None:
    """§Rewards: the lower weighted median (`get_weighted_median`) of (ratio_ppm, stake) over
    the counted `improved` verdicts measured against the commit's first parent; None when they
    carry no stake."""
    return get_weighted_median(
        (verdict.ratio_ppm, snapshot.get(verifier, 0))
        for verifier, verdict in counted.items()
        if verdict.result == IMPROVED and verdict.parent == commit.parents[0]
    )


def get_improvement_ppm(verified_ratio_ppm: int | None) -> int:
    """§Rewards: improvement_ppm = max(0, 1,000,000 − verified ratio); 0 without a ratio."""
    if verified_ratio_ppm is None:
        return 0
    return max(0, PPM - verified_ratio_ppm)


def get_proposer_reward(improvement_ppm: int, params: ContractParams) -> int:
    """§Rewards: ⌊proposer_reward_per_unit_improvement × improvement_ppm / 1,000,000⌋."""
    return params.proposer_reward_per_unit_improvement * improvement_ppm // PPM


def get_verifier_rewards(counted: Mapping[bytes, Verdict], snapshot: Mapping[bytes, int],
                         params: ContractParams) -> tuple[tuple[bytes, int], ...]:
    """§Rewards: every verifier whose counted verdict is `improved` (the outcome of a final
    commit) receives ⌊verifier_reward_pool × its stake / total active stake⌋; other verdicts
    earn nothing. Splitting by share of *all* active stake makes the reward independent of how
    a stake is split across keys and of whether other verifiers took part."""
    total = get_total_stake(snapshot)
    if total == 0:
        return ()
    rewards = []
    for verifier, verdict in counted.items():
        if verdict.result == IMPROVED:
            amount = params.verifier_reward_pool * snapshot.get(verifier, 0) // total
            if amount > 0:
                rewards.append((verifier, amount))
    return tuple(rewards)


def process_commit_rewards(state: LedgerState, commit: Commit, epoch: int,
                           attestations: Iterable[Attestation],
                           params: ContractParams) -> CommitRewards:
    """§Rewards: mint a final commit's rewards into free balances, weighting verdicts by the
    stake snapshot at the commit's epoch (before the commit's own stake transactions)."""
    snapshot = get_stake_snapshot(state, epoch)
    counted = get_counted_verdicts(attestations, commit)
    ratio = get_verified_ratio(counted, commit, snapshot)
    improvement = get_improvement_ppm(ratio)
    rewards = CommitRewards(
        commit=commit.cid, epoch=epoch, proposer=commit.author, verified_ratio_ppm=ratio,
        improvement_ppm=improvement, proposer_reward=get_proposer_reward(improvement, params),
        verifier_rewards=get_verifier_rewards(counted, snapshot, params))
    credit_free(state, commit.author, rewards.proposer_reward)
    for verifier, amount in rewards.verifier_rewards:
        credit_free(state, verifier, amount)
    state.minted += rewards.total
    state.rewards[commit.cid] = rewards
    return rewards
