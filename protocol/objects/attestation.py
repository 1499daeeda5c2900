"""Attestations: a verifier's signed verdict and head vote (docs/PROTOCOL.md §Attestation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import GATE_SEED_BYTES, INT_MAX, MAX_LABEL_BYTES, MAX_RATIO_PPM, PUBLIC_KEY_BYTES
from ..keys import SigningKey
from ._schema import (
    check_bytes,
    check_cid,
    check_int,
    check_str,
    fail,
    nested,
    wire_cid,
    wire_map,
)
from .base import SignedObject, check_signature_field

IMPROVED = "improved"
NOT_IMPROVED = "not_improved"
GATE_FAILED = "gate_failed"
BUILD_FAILED = "build_failed"
SCOPE_VIOLATION = "scope_violation"
TIMEOUT = "timeout"
RESULTS = (IMPROVED, NOT_IMPROVED, GATE_FAILED, BUILD_FAILED, SCOPE_VIOLATION, TIMEOUT)
MEASURED_RESULTS = (IMPROVED, NOT_IMPROVED)
"""Results that come with a measured ratio: the gate passed and the benchmark ran."""
REJECTING_RESULTS = (GATE_FAILED, BUILD_FAILED, SCOPE_VIOLATION)
"""Results that count towards rejecting a commit (DESIGN §6)."""


@dataclass(frozen=True)
class Verdict:
    """The verdict part of an attestation: the outcome of evaluating ``commit`` against ``parent``.

    A measured result (improved / not_improved) carries a positive ratio candidate/parent with
    lo ≤ ratio ≤ hi and the number of pairs; any other result carries zeros there. The gate seed
    is always revealed so anyone can re-run the gate exactly.
    """

    commit: CID
    parent: CID
    result: str
    ratio_ppm: int
    lo_ppm: int
    hi_ppm: int
    pairs: int
    gate_seed: bytes
    profile: str
    toolchain: str

    FIELDS: ClassVar[tuple[str, ...]] = (
        "commit", "parent", "result", "ratio_ppm", "lo_ppm", "hi_ppm", "pairs", "gate_seed",
        "profile", "toolchain",
    )

    def __post_init__(self) -> None:
        check_cid("verdict.commit", self.commit, CODEC_MSGPACK)
        check_cid("verdict.parent", self.parent, CODEC_MSGPACK)
        if self.parent == self.commit:
            raise fail("verdict.parent", "a commit is not measured against itself")
        check_str("verdict.result", self.result, max_bytes=32, choices=RESULTS)
        if self.result in MEASURED_RESULTS:
            for name in ("ratio_ppm", "lo_ppm", "hi_ppm"):
                check_int(f"verdict.{name}", getattr(self, name), 1, MAX_RATIO_PPM)
            if not self.lo_ppm <= self.ratio_ppm <= self.hi_ppm:
                raise fail("verdict", "the interval must contain the ratio: lo ≤ ratio ≤ hi")
            check_int("verdict.pairs", self.pairs, 1, 100_000)
        else:
            for name in ("ratio_ppm", "lo_ppm", "hi_ppm", "pairs"):
                check_int(f"verdict.{name}", getattr(self, name), 0, 0)
        check_bytes("verdict.gate_seed", self.gate_seed, length=GATE_SEED_BYTES)
        check_str("verdict.profile", self.profile, max_bytes=MAX_LABEL_BYTES)
        check_str("verdict.toolchain", self.toolchain, max_bytes=MAX_LABEL_BYTES)

    @property
    def gate_passed(self) -> bool | None:
        """What this verdict claims about the gate: passed, failed, or None (never ran)."""
        if self.result in MEASURED_RESULTS:
            return True
        if self.result == GATE_FAILED:
            return False
        return None

    def to_wire(self) -> dict[str, Any]:
        wire = {name: getattr(self, name) for name in self.FIELDS}
        wire["commit"], wire["parent"] = bytes(self.commit), bytes(self.parent)
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> Verdict:
        checked = dict(wire_map("verdict", wire, cls.FIELDS))
        checked["commit"] = wire_cid("verdict.commit", checked["commit"])
        checked["parent"] = wire_cid("verdict.parent", checked["parent"])
        return cls(**checked)


@dataclass(frozen=True)
class Attestation(SignedObject):
    """One link in a verifier's chain of signed statements.

    Each verifier numbers its attestations 0, 1, 2… and links each to the previous one by CID,
    so its statements form one chain that cannot be replayed or reordered; only the latest counts
    for fork choice. ``head`` is the verifier's fork-choice head when it signed; ``verdict`` is
    present when the attestation also reports an evaluation.
    """

    TYPE: ClassVar[str] = "attestation"
    SIGNER: ClassVar[str] = "verifier"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "target", "verifier", "seq", "prev", "epoch", "time_ms", "head", "verdict",
    )

    target: CID
    verifier: bytes
    seq: int
    prev: CID | None
    epoch: int
    time_ms: int
    head: CID
    verdict: Verdict | None = None
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("attestation.target", self.target, CODEC_MSGPACK)
        check_bytes("attestation.verifier", self.verifier, length=PUBLIC_KEY_BYTES)
        check_int("attestation.seq", self.seq, 0, INT_MAX)
        if (self.prev is None) != (self.seq == 0):
            raise fail("attestation.prev", "must be nil exactly when seq is 0")
        if self.prev is not None:
            check_cid("attestation.prev", self.prev, CODEC_MSGPACK)
        check_int("attestation.epoch", self.epoch, 0, INT_MAX)
        check_int("attestation.time_ms", self.time_ms, 0, INT_MAX)
        check_cid("attestation.head", self.head, CODEC_MSGPACK)
        if self.verdict is not None and not isinstance(self.verdict, Verdict):
            raise fail("attestation.verdict", "expected a Verdict or nil")
        check_signature_field("attestation", self.sig)

    @classmethod
    def create(cls, key: SigningKey, *, target: CID, seq: int, prev: CID | None, epoch: int,
               time_ms: int, head: CID, verdict: Verdict | None = None) -> Attestation:
        return cls(target=target, verifier=key.public_key, seq=seq, prev=prev, epoch=epoch,
                   time_ms=time_ms, head=head, verdict=verdict).signed(key)

    def body(self) -> dict[str, Any]:
        return {
            "target": bytes(self.target),
            "verifier": self.verifier,
            "seq": self.seq,
            "prev": None if self.prev is None else bytes(self.prev),
            "epoch": self.epoch,
            "time_ms": self.time_ms,
            "head": bytes(self.head),
            "verdict": None if self.verdict is None else self.verdict.to_wire(),
        }

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Attestation:
        verdict = wire["verdict"]
        return cls(
            target=wire_cid("attestation.target", wire["target"]),
            verifier=wire["verifier"],
            seq=wire["seq"],
            prev=None if wire["prev"] is None else wire_cid("attestation.prev", wire["prev"]),
            epoch=wire["epoch"],
            time_ms=wire["time_ms"],
            head=wire_cid("attestation.head", wire["head"]),
            verdict=None if verdict is None else nested(
                "attestation", lambda: Verdict.from_wire(verdict)),
        )


def conflict(a: Attestation, b: Attestation) -> str | None:
    """Why two attestations are equivocation (slashable), or None (docs/PROTOCOL.md §Slashing).

    They conflict when one verifier signed two distinct attestations on one target that either
    share a sequence number (a fork of its chain) or give different results for one commit.
    """
    if a.verifier != b.verifier or a.target != b.target or a.cid == b.cid:
        return None
    if a.seq == b.seq:
        return f"two distinct attestations with sequence number {a.seq}"
    if (a.verdict is not None and b.verdict is not None and a.verdict.commit == b.verdict.commit
            and a.verdict.result != b.verdict.result):
        return (f"two different verdicts on commit {a.verdict.commit}: "
                f"{a.verdict.result} and {b.verdict.result}")
    return None
