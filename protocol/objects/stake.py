"""Stake transactions: bond and unbond, signed by the account (docs/PROTOCOL.md §Stake)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import INT_MAX, PUBLIC_KEY_BYTES
from ..keys import SigningKey
from ._schema import check_bytes, check_cid, check_int, check_str, wire_cid
from .base import SignedObject, check_signature_field

STAKE_OPS = ("bond", "unbond")


@dataclass(frozen=True)
class StakeTx(SignedObject):
    """Move ``amount`` into (bond) or out of (unbond) the account's bonded stake on a target.

    ``nonce`` orders an account's transactions and makes each one unique, so a transaction
    cannot be replayed: the ledger applies nonce n only after n − 1.
    """

    TYPE: ClassVar[str] = "stake"
    SIGNER: ClassVar[str] = "account"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "account", "op", "amount", "nonce")

    target: CID
    account: bytes
    op: str
    amount: int
    nonce: int
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("stake.target", self.target, CODEC_MSGPACK)
        check_bytes("stake.account", self.account, length=PUBLIC_KEY_BYTES)
        check_str("stake.op", self.op, max_bytes=8, choices=STAKE_OPS)
        check_int("stake.amount", self.amount, 1, INT_MAX)
        check_int("stake.nonce", self.nonce, 0, INT_MAX)
        check_signature_field("stake", self.sig)

    @classmethod
    def create(cls, key: SigningKey, *, target: CID, op: str, amount: int, nonce: int
               ) -> StakeTx:
        return cls(target=target, account=key.public_key, op=op, amount=amount,
                   nonce=nonce).signed(key)

    def body(self) -> dict[str, Any]:
        return {"target": bytes(self.target), "account": self.account, "op": self.op,
                "amount": self.amount, "nonce": self.nonce}

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> StakeTx:
        return cls(target=wire_cid("stake.target", wire["target"]), account=wire["account"],
                   op=wire["op"], amount=wire["amount"], nonce=wire["nonce"])
