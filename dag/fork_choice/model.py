"""The plain data that fork choice reads and returns, its constants, and input checks.

Everything here is shared by the reference (`spec.py`) and the proto-array (`proto_array.py`), so
both see the same inputs, reject the same malformed ones and agree on every threshold. The rules
are stated in docs/PROTOCOL.md, section "Fork choice and finality".
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

CommitId = bytes
"""A commit's CID (opaque bytes). The genesis is the target's CID."""

VerifierId = bytes
"""A verifier's Ed25519 public key (opaque bytes)."""

PPM = 1_000_000
"""Parts per million in one whole."""

DEFAULT_QUORUM_PPM = 333_333
"""Share of total active stake (ppm) that `improved` verdicts must carry for acceptance: one
third, rounded down, so that exactly one third of the stake meets it."""

ACCEPT_NUMERATOR, ACCEPT_DENOMINATOR = 2, 3
"""`improved` must carry at least this fraction of the stake that gave any verdict on a commit."""

REJECT_NUMERATOR, REJECT_DENOMINATOR = 1, 3
"""Failure verdicts must carry strictly more than this fraction of the verdict stake to reject."""

FINALITY_NUMERATOR, FINALITY_DENOMINATOR = 2, 3
"""A commit's weight must be at least this fraction of total active stake for it to become final."""


class Verdict(enum.StrEnum):
    """What a verifier concluded about a commit (DESIGN §3)."""

    IMPROVED = "improved"
    NOT_IMPROVED = "not_improved"
    GATE_FAILED = "gate_failed"
    BUILD_FAILED = "build_failed"
    SCOPE_VIOLATION = "scope_violation"
    TIMEOUT = "timeout"


FAILURE_VERDICTS = frozenset({Verdict.GATE_FAILED, Verdict.BUILD_FAILED, Verdict.SCOPE_VIOLATION})
"""Verdicts that say the commit is broken (not merely slow): they count towards rejection.
`not_improved` and `timeout` count only in the verdict stake."""


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit as fork choice sees it: its CID and its ordered parents (the first parent is the
    line it extends; more than one parent makes a merge)."""

    id: CommitId
    parents: tuple[CommitId, ...]


@dataclass(frozen=True, slots=True)
class VerdictClaim:
    """The verdict part of an attestation: `commit` measured against `parent` (one of the
    commit's parents), with the verifier's measured ratio candidate/parent in ppm (lower is
    faster)."""

    commit: CommitId
    parent: CommitId
    verdict: Verdict
    ratio_ppm: int


@dataclass(frozen=True, slots=True)
class Attestation:
    """One signed attestation, reduced to what fork choice needs.

    `attestation_id` is the attestation's CID: two different ids with the same (verifier, seq)
    are a fork of the verifier's attestation chain. Every attestation carries a head vote; the
    verdict part is optional (vote-only attestations).
    """

    attestation_id: bytes
    verifier: VerifierId
    seq: int
    head: CommitId
    verdict: VerdictClaim | None = None


@dataclass(frozen=True, slots=True)
class HeadUpdate:
    """What `update_head` decided: the head, the finalized commit after this update, and the
    commits of the canonical chain that became final in this update, oldest first."""

    head: CommitId
    finalized: CommitId
    newly_finalized: tuple[CommitId, ...]


class ForkChoiceError(Exception):
    """Base of the errors fork choice raises; the store is unchanged when one is raised."""


class UnknownCommitError(ForkChoiceError, KeyError):
    """An input names a commit the store was never given. The caller holds such an input as
    pending until the commit arrives (DESIGN §4: ignore, don't reject)."""


class InvalidInputError(ForkChoiceError, ValueError):
    """An input is malformed (e.g. a verdict measured against a commit that is not a parent, a
    negative stake). Such an input can never become valid: reject it and penalise its sender."""


class ForkChoice(Protocol):
    """The interface both implementations provide: events in, decisions out. No I/O, no clock."""

    def add_commit(self, commit: Commit) -> None: ...
    def add_attestation(self, attestation: Attestation) -> None: ...
    def mark_equivocator(self, verifier: VerifierId) -> None: ...
    def set_stakes(self, stakes: Mapping[VerifierId, int]) -> None: ...
    def update_head(self) -> HeadUpdate: ...

    @property
    def genesis(self) -> CommitId: ...
    @property
    def head(self) -> CommitId: ...
    @property
    def finalized(self) -> CommitId: ...

    def total_active_stake(self) -> int: ...
    def equivocators(self) -> frozenset[VerifierId]: ...
    def is_accepted(self, commit: CommitId) -> bool: ...
    def is_rejected(self, commit: CommitId) -> bool: ...
    def is_final(self, commit: CommitId) -> bool: ...
    def accepted(self) -> frozenset[CommitId]: ...
    def rejected(self) -> frozenset[CommitId]: ...
    def improvement_ratio(self, commit: CommitId) -> int | None: ...
    def weight(self, commit: CommitId) -> int: ...
    def weights(self) -> dict[CommitId, int]: ...
    def canonical_chain(self) -> list[CommitId]: ...


ParentsOf = Callable[[CommitId], "tuple[CommitId, ...] | None"]
"""Looks up a known commit's parents; None when the commit is unknown."""


def _check_natural(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInputError(f"{what} must be an integer >= 0, got {value!r}")


def check_quorum_ppm(quorum_ppm: int) -> None:
    """The quorum is a share of stake: 0..PPM."""
    _check_natural(quorum_ppm, "quorum_ppm")
    if quorum_ppm > PPM:
        raise InvalidInputError(f"quorum_ppm must be at most {PPM}, got {quorum_ppm}")


def check_stakes(stakes: Mapping[VerifierId, int]) -> None:
    """Stakes are non-negative integers keyed by verifier key."""
    for verifier, stake in stakes.items():
        if not isinstance(verifier, bytes):
            raise InvalidInputError(f"verifier ids are bytes, got {verifier!r}")
        _check_natural(stake, "stake")


def check_commit(commit: Commit, genesis: CommitId, parents_of: ParentsOf) -> bool:
    """Checks a commit before it is added; returns False when it is already known (adding it
    again changes nothing). Its parents must be known: a commit is added after its parents."""
    if not commit.parents:
        raise InvalidInputError("a commit has at least one parent; only the genesis has none")
    if len(set(commit.parents)) != len(commit.parents):
        raise InvalidInputError("a commit lists each parent once")
    if commit.id == genesis or commit.id in commit.parents:
        raise InvalidInputError("a commit cannot be its own ancestor or the genesis")
    known = parents_of(commit.id)
    if known is not None:
        if known != commit.parents:
            raise InvalidInputError("a commit id is already known with other parents")
        return False
    for parent in commit.parents:
        if parents_of(parent) is None:
            raise UnknownCommitError(parent)
    return True


def check_attestation(attestation: Attestation, parents_of: ParentsOf) -> None:
    """Checks an attestation against the known commits: its head vote and its verdict's commit
    must be known, and the verdict must be measured against one of the commit's parents."""
    _check_natural(attestation.seq, "seq")
    if parents_of(attestation.head) is None:
        raise UnknownCommitError(attestation.head)
    claim = attestation.verdict
    if claim is None:
        return
    parents = parents_of(claim.commit)
    if parents is None:
        raise UnknownCommitError(claim.commit)
    if claim.parent not in parents:
        raise InvalidInputError("a verdict is measured against one of the commit's parents")
    if not isinstance(claim.verdict, Verdict):
        raise InvalidInputError(f"unknown verdict {claim.verdict!r}")
    _check_natural(claim.ratio_ppm, "ratio_ppm")
