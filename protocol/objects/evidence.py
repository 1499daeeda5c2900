"""Evidence of equivocation: two conflicting attestations by one verifier (§Slashing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import PUBLIC_KEY_BYTES
from ..keys import SigningKey
from ._schema import check_bytes, check_cid, fail, nested, wire_cid
from .attestation import Attestation, conflict
from .base import SignedObject, check_signature_field


@dataclass(frozen=True)
class Evidence(SignedObject):
    """Self-contained proof that ``a.verifier`` equivocated; anyone can check it.

    ``a`` and ``b`` are in ascending CID order so one pair has one evidence encoding. The
    submitter signs it so the whistle-blower reward goes to whoever found it first.
    """

    TYPE: ClassVar[str] = "evidence"
    SIGNER: ClassVar[str] = "submitter"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "a", "b", "submitter")

    target: CID
    a: Attestation
    b: Attestation
    submitter: bytes
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("evidence.target", self.target, CODEC_MSGPACK)
        for name in ("a", "b"):
            att = getattr(self, name)
            if not isinstance(att, Attestation) or att.sig is None:
                raise fail(f"evidence.{name}", "expected a signed attestation")
            if att.target != self.target:
                raise fail(f"evidence.{name}.target", "is not the evidence's target")
        if not self.a.cid < self.b.cid:
            raise fail("evidence", "attestations must be distinct and in ascending CID order")
        if conflict(self.a, self.b) is None:
            raise fail("evidence", "the two attestations do not conflict")
        check_bytes("evidence.submitter", self.submitter, length=PUBLIC_KEY_BYTES)
        check_signature_field("evidence", self.sig)

    @property
    def offender(self) -> bytes:
        return self.a.verifier

    @property
    def reason(self) -> str:
        return conflict(self.a, self.b) or ""

    @classmethod
    def create(cls, key: SigningKey, first: Attestation, second: Attestation) -> Evidence:
        a, b = sorted((first, second), key=lambda att: att.cid)
        return cls(target=a.target, a=a, b=b, submitter=key.public_key).signed(key)

    def verify(self) -> None:
        """The submitter's signature and both of the offender's signatures must hold."""
        super().verify()
        self.a.verify()
        self.b.verify()

    def body(self) -> dict[str, Any]:
        return {"target": bytes(self.target), "a": self.a.to_wire(), "b": self.b.to_wire(),
                "submitter": self.submitter}

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Evidence:
        return cls(
            target=wire_cid("evidence.target", wire["target"]),
            a=nested("evidence.a", lambda: Attestation.from_wire(wire["a"])),
            b=nested("evidence.b", lambda: Attestation.from_wire(wire["b"])),
            submitter=wire["submitter"],
        )
