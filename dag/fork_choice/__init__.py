"""Fork choice and finality for poi's improvement DAG (docs/PROTOCOL.md, "Fork choice and
finality"). Pure: no I/O, no clock.

Nodes use `ProtoArrayForkChoice`; `SpecForkChoice` is the reference it is tested against. Both
take the same events (`add_commit`, `add_attestation`, `mark_equivocator`, `set_stakes`) and
answer the same queries; `update_head` computes the head and moves finality.
"""

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
    ForkChoice,
    ForkChoiceError,
    HeadUpdate,
    InvalidInputError,
    UnknownCommitError,
    Verdict,
    VerdictClaim,
    VerifierId,
)
from dag.fork_choice.proto_array import PRUNE_THRESHOLD_NODES, ProtoArrayForkChoice
from dag.fork_choice.spec import SpecForkChoice, get_weighted_median

__all__ = [
    "ACCEPT_DENOMINATOR",
    "ACCEPT_NUMERATOR",
    "DEFAULT_QUORUM_PPM",
    "FAILURE_VERDICTS",
    "FINALITY_DENOMINATOR",
    "FINALITY_NUMERATOR",
    "PPM",
    "PRUNE_THRESHOLD_NODES",
    "REJECT_DENOMINATOR",
    "REJECT_NUMERATOR",
    "Attestation",
    "Commit",
    "CommitId",
    "ForkChoice",
    "ForkChoiceError",
    "HeadUpdate",
    "InvalidInputError",
    "ProtoArrayForkChoice",
    "SpecForkChoice",
    "UnknownCommitError",
    "Verdict",
    "VerdictClaim",
    "VerifierId",
    "get_weighted_median",
]
