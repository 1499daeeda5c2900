"""The contracts' constants (docs/PROTOCOL.md, "Contracts", §Constants).

Every number the stake ledger, slashing, challenges and rewards use lives here, UPPER_CASE with
its unit in the name. They are protocol constants of version 1: the target does not carry them,
so every node must run with the same `ContractParams` (the defaults). Tests build other
`ContractParams` to reach edges quickly.

Units: amounts are integer **stake units** (the unit of the target's genesis stakes); fractions
are **ppm** (parts per million, 1,000,000 = 1); delays are **epochs** (the target's
`epoch_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

PPM = 1_000_000
"""Parts per million in one whole."""

BOND_DELAY_EPOCHS = 2
"""A bond included in a commit of epoch e counts for fork choice from epoch e + 2."""

UNBOND_DELAY_EPOCHS = 8
"""Unbonded (and ejected) stake is released to the free balance this many epochs later, and
stays slashable until then."""

EQUIVOCATION_SLASH_PPM = 500_000
"""Share of an equivocator's stake (bonded + pending + unbonding) that is slashed."""

CHALLENGE_SLASH_PPM = 500_000
"""Share of a verifier's stake that is slashed when a challenge proves its gate claim false."""

WHISTLEBLOWER_PPM = 100_000
"""Share of an equivocation slash paid to the evidence's submitter; the rest is burned."""

CHALLENGER_REWARD_PPM = 200_000
"""Share of a challenge slash paid to the winning challenger (besides its bond, returned)."""

COMMITTEE_REWARD_PPM = 100_000
"""Share of a challenge's bond paid, by whichever side loses, to the committee members who ruled
with the majority, split by committee weight."""

COMMITTEE_SIZE = 5
"""Members sampled (by stake, without replacement) to re-run a challenged gate."""

MIN_CHALLENGE_BOND = 10
"""Least bond (stake units) a challenge must carry to be considered."""

PROPOSER_REWARD_PER_UNIT_IMPROVEMENT = 1_000
"""Stake units minted to a final commit's proposer per whole unit (1,000,000 ppm) of verified
improvement: a 3% improvement (30,000 ppm) pays 30."""

VERIFIER_REWARD_POOL = 20
"""Stake units minted per final commit for its verifiers: each verifier whose verdict was
`improved` receives ⌊pool × its stake / total active stake⌋."""


class ParamsError(ValueError):
    """A `ContractParams` value is out of range."""


@dataclass(frozen=True)
class ContractParams:
    """The contract constants as one value (defaults: the module constants above)."""

    bond_delay_epochs: int = BOND_DELAY_EPOCHS
    unbond_delay_epochs: int = UNBOND_DELAY_EPOCHS
    equivocation_slash_ppm: int = EQUIVOCATION_SLASH_PPM
    challenge_slash_ppm: int = CHALLENGE_SLASH_PPM
    whistleblower_ppm: int = WHISTLEBLOWER_PPM
    challenger_reward_ppm: int = CHALLENGER_REWARD_PPM
    committee_reward_ppm: int = COMMITTEE_REWARD_PPM
    committee_size: int = COMMITTEE_SIZE
    min_challenge_bond: int = MIN_CHALLENGE_BOND
    proposer_reward_per_unit_improvement: int = PROPOSER_REWARD_PER_UNIT_IMPROVEMENT
    verifier_reward_pool: int = VERIFIER_REWARD_POOL

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ParamsError(f"{field.name} must be an integer >= 0, got {value!r}")
            if field.name.endswith("_ppm") and value > PPM:
                raise ParamsError(f"{field.name} must be at most {PPM}, got {value}")
        if self.bond_delay_epochs < 1 or self.unbond_delay_epochs < 1:
            raise ParamsError("bond and unbond delays are at least one epoch")
        if self.committee_size < 1:
            raise ParamsError("committee_size must be at least 1")
        if self.min_challenge_bond < 1:
            raise ParamsError("min_challenge_bond must be at least 1")


DEFAULT_PARAMS = ContractParams()
"""The version-1 protocol constants."""
