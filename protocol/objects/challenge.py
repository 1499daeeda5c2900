"""Challenges: a bonded dispute of one attestation's gate claim (docs/PROTOCOL.md §Challenges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import INT_MAX, PUBLIC_KEY_BYTES
from ..keys import SigningKey
from ._schema import check_bytes, check_cid, check_int, fail, nested, wire_cid
from .attestation import Attestation
from .base import SignedObject, check_signature_field


@dataclass(frozen=True)
class Challenge(SignedObject):
    """``challenger`` stakes ``bond`` that ``attestation``'s gate claim is false.

    The gate is deterministic given (tree, seed) and the seed is revealed in the attestation, so
    a committee can re-run it and settle the dispute; only attestations whose verdict says what
    the gate did (passed: improved / not_improved; failed: gate_failed) can be challenged.
    ``anchor`` is a commit that was final when the challenger signed: its CID seeds the
    committee, so the challenger cannot pick the committee by grinding its own nonce.
    """

    TYPE: ClassVar[str] = "challenge"
    SIGNER: ClassVar[str] = "challenger"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "challenger", "attestation", "anchor", "bond",
                                         "nonce")

    target: CID
    challenger: bytes
    attestation: Attestation
    anchor: CID
    bond: int
    nonce: int
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("challenge.target", self.target, CODEC_MSGPACK)
        check_bytes("challenge.challenger", self.challenger, length=PUBLIC_KEY_BYTES)
        att = self.attestation
        if not isinstance(att, Attestation) or att.sig is None:
            raise fail("challenge.attestation", "expected a signed attestation")
        if att.target != self.target:
            raise fail("challenge.attestation.target", "is not the challenge's target")
        if att.verdict is None or att.verdict.gate_passed is None:
            raise fail("challenge.attestation", "has no gate claim to dispute")
        if att.verifier == self.challenger:
            raise fail("challenge.challenger", "a verifier cannot challenge itself")
        check_cid("challenge.anchor", self.anchor, CODEC_MSGPACK)
        check_int("challenge.bond", self.bond, 1, INT_MAX)
        check_int("challenge.nonce", self.nonce, 0, INT_MAX)
        check_signature_field("challenge", self.sig)

    @classmethod
    def create(cls, key: SigningKey, attestation: Attestation, *, anchor: CID, bond: int,
               nonce: int) -> Challenge:
        return cls(target=attestation.target, challenger=key.public_key,
                   attestation=attestation, anchor=anchor, bond=bond, nonce=nonce).signed(key)

    def verify(self) -> None:
        super().verify()
        self.attestation.verify()

    def body(self) -> dict[str, Any]:
        return {"target": bytes(self.target), "challenger": self.challenger,
                "attestation": self.attestation.to_wire(), "anchor": bytes(self.anchor),
                "bond": self.bond, "nonce": self.nonce}

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Challenge:
        return cls(
            target=wire_cid("challenge.target", wire["target"]),
            challenger=wire["challenger"],
            attestation=nested("challenge.attestation",
                               lambda: Attestation.from_wire(wire["attestation"])),
            anchor=wire_cid("challenge.anchor", wire["anchor"]),
            bond=wire["bond"],
            nonce=wire["nonce"],
        )
