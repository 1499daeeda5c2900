"""Rulings: a challenge committee member's re-run of a disputed gate (§Challenges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import MAX_LABEL_BYTES, PUBLIC_KEY_BYTES
from ..keys import SigningKey
from ._schema import check_bytes, check_cid, check_str, fail, wire_cid
from .base import SignedObject, check_signature_field


@dataclass(frozen=True)
class Ruling(SignedObject):
    """``member`` re-ran the gate of ``challenge``'s attestation with its revealed seed.

    ``gate_passed`` is what the member's run of the gate returned; the challenge is settled by
    the committee's stake majority (docs/PROTOCOL.md §Challenges). ``toolchain`` says what the
    member built with, so a disagreement can be traced.
    """

    TYPE: ClassVar[str] = "ruling"
    SIGNER: ClassVar[str] = "member"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "challenge", "member", "gate_passed",
                                         "toolchain")

    target: CID
    challenge: CID
    member: bytes
    gate_passed: bool
    toolchain: str
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("ruling.target", self.target, CODEC_MSGPACK)
        check_cid("ruling.challenge", self.challenge, CODEC_MSGPACK)
        check_bytes("ruling.member", self.member, length=PUBLIC_KEY_BYTES)
        if type(self.gate_passed) is not bool:
            raise fail("ruling.gate_passed", "expected true or false")
        check_str("ruling.toolchain", self.toolchain, max_bytes=MAX_LABEL_BYTES)
        check_signature_field("ruling", self.sig)

    @classmethod
    def create(cls, key: SigningKey, *, target: CID, challenge: CID, gate_passed: bool,
               toolchain: str) -> Ruling:
        return cls(target=target, challenge=challenge, member=key.public_key,
                   gate_passed=gate_passed, toolchain=toolchain).signed(key)

    def body(self) -> dict[str, Any]:
        return {"target": bytes(self.target), "challenge": bytes(self.challenge),
                "member": self.member, "gate_passed": self.gate_passed,
                "toolchain": self.toolchain}

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Ruling:
        return cls(target=wire_cid("ruling.target", wire["target"]),
                   challenge=wire_cid("ruling.challenge", wire["challenge"]),
                   member=wire["member"], gate_passed=wire["gate_passed"],
                   toolchain=wire["toolchain"])
