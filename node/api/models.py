"""The JSON shapes of the HTTP API (pydantic models, so the served OpenAPI schema is exact).

CIDs are base32 text, keys and byte strings hex, ratios in parts per million of
candidate/parent time (lower is faster). Models accept extra fields where the node supplies a
dict whose keys may grow (``/v1/status``); every other model lists exactly what is sent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong, in words a user can act on.")


class ProposerStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: str = Field(description="starting, experimenting, idle, or error: …")
    strategy: str | None = None
    best: str | None = Field(None, description="The commit the proposer builds on.")
    iteration: int | None = None
    queued_patches: int | None = None
    published: list[str] = Field(default_factory=list)
    rebases: int | None = None
    stop_reason: str | None = None


class NodeStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    peer_id: str
    public_key: str
    roles: list[str]
    listen_addrs: list[str]
    peers: list[str]
    synced: bool
    queue_length: int
    verifying: str | None
    targets: list[str]
    pending_objects: int
    uptime_s: float
    http_url: str | None
    version: str
    proposer: ProposerStatus | None = Field(
        None, description="The proposer role, when this node runs one.")


class ValidatorInfo(BaseModel):
    key: str
    stake: int


class TargetInfo(BaseModel):
    cid: str
    name: str
    description: str
    metric: str
    direction: str
    profile: str
    writable: list[str]
    validators: list[ValidatorInfo]
    genesis_time_ms: int
    epoch_seconds: int
    quorum_ppm: int
    head: str
    finalized: str
    commit_count: int


class ClaimInfo(BaseModel):
    profile: str
    ratio_ppm: int
    lo_ppm: int
    hi_ppm: int
    pairs: int


class StakeInfo(BaseModel):
    improved: int = Field(description="Stake of the latest `improved` verdicts.")
    against: int = Field(description="Stake of gate_failed, build_failed, scope_violation.")
    neutral: int = Field(description="Stake of not_improved and timeout verdicts.")
    verifiers: int = Field(description="Verifiers with a verdict on the commit.")
    total_active: int = Field(description="All stake fork choice counts now.")


class CommitInfo(BaseModel):
    cid: str
    target: str
    parents: list[str]
    tree: str
    author: str
    message: str
    time_ms: int
    claim: ClaimInfo
    status: str = Field(description="pending, accepted, rejected or final.")
    stake: StakeInfo
    verified_ratio_ppm: int | None
    children: list[str]
    attestation_count: int
    on_chain: bool = Field(description="Whether the commit is on the canonical chain.")


class VerdictInfo(BaseModel):
    commit: str
    parent: str
    result: str
    ratio_ppm: int
    lo_ppm: int
    hi_ppm: int
    pairs: int
    gate_seed: str
    profile: str
    toolchain: str


class AttestationInfo(BaseModel):
    cid: str
    verifier: str
    seq: int
    epoch: int
    time_ms: int
    head: str
    verdict: VerdictInfo | None


class Heads(BaseModel):
    head: str
    finalized: str
    heads: list[str] = Field(description="Commits nobody builds on.")


class ChainStepInfo(BaseModel):
    cid: str
    message: str
    author: str
    time_ms: int
    ratio_ppm: int | None = Field(description="Verified ratio of this step over its parent.")
    cumulative_ppm: int = Field(description="Product of the ratios from the target to here, "
                                "in ppm, rounded, at least 1.")
    speedup: float = Field(description="Baseline time over this commit's time (the inverse "
                           "of the unrounded product).")
    final: bool


class CanonicalChain(BaseModel):
    target: str
    speedup: float
    steps: list[ChainStepInfo]


class DagNode(BaseModel):
    cid: str
    parents: list[str]
    status: str
    message: str
    author: str
    time_ms: int
    ratio_ppm: int | None = Field(description="Verified ratio: the stake-weighted median of "
                                  "the improved verdicts once the commit is accepted (null "
                                  "while pending and for a rejected commit).")
    claim_ratio_ppm: int
    on_chain: bool


class DagPage(BaseModel):
    nodes: list[DagNode]
    edges: list[list[str]] = Field(description="[parent, child] pairs of the nodes returned.")
    next: int | None = Field(description="Pass as `since` for the next page; null at the end.")
    total: int = Field(description="Commits of the target this node knows.")


class AccountInfo(BaseModel):
    key: str
    free: int
    bonded: int
    locked: int
    ejected: bool


class SlashInfo(BaseModel):
    offender: str
    reason: str
    epoch: int
    amount: int
    source: str


class RewardInfo(BaseModel):
    commit: str
    account: str
    amount: int
    kind: str = Field(description="proposer or verifier")


class Stakes(BaseModel):
    epoch: int = Field(description="The node's current epoch for this target.")
    ledger_epoch: int = Field(description="The epoch of the last final commit.")
    minted: int
    burned: int
    accounts: list[AccountInfo]
    slashes: list[SlashInfo]
    rewards: list[RewardInfo]
    equivocators: list[str]


class RejectedCommit(BaseModel):
    cid: str
    message: str
    author: str
    stake_against: int
    reasons: dict[str, int] = Field(description="Latest verdict result → number of verifiers.")


IndexReason = list[int | str]
"""``[index, reason]``: the object's position in the bundle and what became of it."""


class SubmitResultBody(BaseModel):
    accepted: list[str] = Field(description="CIDs stored (or held until their dependencies "
                                            "arrive).")
    rejected: list[IndexReason] = Field(description="[index, reason] of invalid objects.")
    ignored: list[IndexReason] = Field(description="[index, reason] of valid objects that "
                                                   "changed nothing (e.g. already known).")


class SubmitRejected(BaseModel):
    """A 400 from ``POST /v1/commits``: a malformed bundle (``error`` only), or a bundle whose
    every object was rejected (``error`` with the per-object results)."""

    error: str
    accepted: list[str] = Field(default_factory=list)
    rejected: list[IndexReason] = Field(default_factory=list)
    ignored: list[IndexReason] = Field(default_factory=list)


class PatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch: str = Field(min_length=1, description="A unified diff (git diff format).")
    message: str | None = None


class PatchQueued(BaseModel):
    model_config = ConfigDict(extra="allow")

    queued: bool
