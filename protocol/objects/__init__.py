"""The protocol's objects (docs/PROTOCOL.md §Objects) and decoding by type."""

from __future__ import annotations

from ..encoding import decode
from ._schema import fail
from .attestation import (
    BUILD_FAILED,
    GATE_FAILED,
    IMPROVED,
    MEASURED_RESULTS,
    NOT_IMPROVED,
    REJECTING_RESULTS,
    RESULTS,
    SCOPE_VIOLATION,
    TIMEOUT,
    Attestation,
    Verdict,
    conflict,
)
from .base import PoiObject, SignedObject
from .blob import Blob
from .challenge import Challenge
from .commit import Claim, Commit
from .evidence import Evidence
from .ruling import Ruling
from .stake import STAKE_OPS, StakeTx
from .target import SEED_PLACEHOLDER, Commands, Limits, Stats, Target, Validator
from .tree import Tree, TreeEntry

OBJECT_TYPES: dict[str, type[PoiObject]] = {
    cls.TYPE: cls for cls in (Tree, Target, Commit, Attestation, StakeTx, Evidence, Challenge,
                              Ruling)
}


def decode_object(data: bytes) -> PoiObject:
    """Decode and validate any structured object, dispatching on its ``type`` field."""
    wire = decode(data)
    kind = wire.get("type") if isinstance(wire, dict) else None
    cls = OBJECT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise fail("type", f"unknown object type {kind!r}")
    obj = cls.from_wire(wire)
    obj.__dict__["encoded"] = bytes(data)
    return obj


__all__ = [
    "BUILD_FAILED", "GATE_FAILED", "IMPROVED", "MEASURED_RESULTS", "NOT_IMPROVED",
    "OBJECT_TYPES", "REJECTING_RESULTS", "RESULTS", "SCOPE_VIOLATION", "SEED_PLACEHOLDER",
    "STAKE_OPS", "TIMEOUT", "Attestation", "Blob", "Challenge", "Claim", "Commands", "Commit",
    "Evidence", "Limits", "PoiObject", "Ruling", "SignedObject", "StakeTx", "Stats", "Target",
    "Tree", "TreeEntry", "Validator", "Verdict", "conflict", "decode_object",
]
