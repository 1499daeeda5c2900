"""Commits: a signed improvement on a target's DAG (docs/PROTOCOL.md §Commit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..cid import CID, CODEC_MSGPACK
from ..constants import (
    INT_MAX,
    MAX_LABEL_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_PARENTS,
    MAX_RATIO_PPM,
    MAX_STAKE_TXS_PER_COMMIT,
    PUBLIC_KEY_BYTES,
)
from ..keys import SigningKey
from ._schema import (
    check_bytes,
    check_cid,
    check_int,
    check_str,
    check_tuple,
    fail,
    nested,
    wire_cid,
    wire_list,
    wire_map,
)
from .base import SignedObject, check_signature_field
from .stake import StakeTx


@dataclass(frozen=True)
class Claim:
    """What the author measured: candidate/parent ratio and its interval, in ppm (DESIGN §9)."""

    profile: str
    ratio_ppm: int
    lo_ppm: int
    hi_ppm: int
    pairs: int

    FIELDS: ClassVar[tuple[str, ...]] = ("profile", "ratio_ppm", "lo_ppm", "hi_ppm", "pairs")

    def __post_init__(self) -> None:
        check_str("claim.profile", self.profile, max_bytes=MAX_LABEL_BYTES)
        for name in ("ratio_ppm", "lo_ppm", "hi_ppm"):
            check_int(f"claim.{name}", getattr(self, name), 1, MAX_RATIO_PPM)
        if not self.lo_ppm <= self.ratio_ppm <= self.hi_ppm:
            raise fail("claim", "the interval must contain the ratio: lo ≤ ratio ≤ hi")
        check_int("claim.pairs", self.pairs, 1, 100_000)

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_wire(cls, wire: object) -> Claim:
        return cls(**wire_map("claim", wire, cls.FIELDS))


@dataclass(frozen=True)
class Commit(SignedObject):
    """A proposed improvement.

    ``parents[0]`` is the base the claim was measured against; further parents (a merge) are in
    ascending CID order because their order carries no meaning. ``tree`` holds the complete
    content of the target's writable scope; the workspace is the target's base tree with its
    writable part replaced by this tree (docs/PROTOCOL.md §Workspace).
    """

    TYPE: ClassVar[str] = "commit"
    SIGNER: ClassVar[str] = "author"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "target", "parents", "tree", "author", "claim", "stake_txs", "message", "time_ms",
    )

    target: CID
    parents: tuple[CID, ...]
    tree: CID
    author: bytes
    claim: Claim
    time_ms: int
    message: str = ""
    stake_txs: tuple[StakeTx, ...] = ()
    sig: bytes | None = None

    def __post_init__(self) -> None:
        check_cid("commit.target", self.target, CODEC_MSGPACK)
        check_tuple("commit.parents", self.parents, min_len=1, max_len=MAX_PARENTS,
                    item=lambda w, v: check_cid(w, v, CODEC_MSGPACK))
        if self.parents[0] in self.parents[1:]:
            raise fail("commit.parents", "the first parent is repeated")
        check_tuple("commit.parents[1:]", self.parents[1:], max_len=MAX_PARENTS,
                    sorted_unique=True)
        check_cid("commit.tree", self.tree, CODEC_MSGPACK)
        check_bytes("commit.author", self.author, length=PUBLIC_KEY_BYTES)
        if not isinstance(self.claim, Claim):
            raise fail("commit.claim", "expected a Claim")
        check_tuple("commit.stake_txs", self.stake_txs, max_len=MAX_STAKE_TXS_PER_COMMIT,
                    item=_check_stake_tx)
        if len({tx.cid for tx in self.stake_txs}) != len(self.stake_txs):
            raise fail("commit.stake_txs", "a stake transaction is included twice")
        for index, tx in enumerate(self.stake_txs):
            if tx.target != self.target:
                raise fail(f"commit.stake_txs[{index}].target", "is not this commit's target")
        check_str("commit.message", self.message, max_bytes=MAX_MESSAGE_BYTES, allow_empty=True)
        check_int("commit.time_ms", self.time_ms, 0, INT_MAX)
        check_signature_field("commit", self.sig)

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @classmethod
    def create(cls, key: SigningKey, *, target: CID, parents: Sequence[CID], tree: CID,
               claim: Claim, time_ms: int, message: str = "",
               stake_txs: Sequence[StakeTx] = ()) -> Commit:
        """Build and sign; extra merge parents are put in canonical order for the caller."""
        first, *rest = parents
        return cls(target=target, parents=(first, *sorted(set(rest))), tree=tree,
                   author=key.public_key, claim=claim, time_ms=time_ms, message=message,
                   stake_txs=tuple(stake_txs)).signed(key)

    def verify(self) -> None:
        super().verify()
        for tx in self.stake_txs:
            tx.verify()

    def body(self) -> dict[str, Any]:
        return {
            "target": bytes(self.target),
            "parents": [bytes(p) for p in self.parents],
            "tree": bytes(self.tree),
            "author": self.author,
            "claim": self.claim.to_wire(),
            "stake_txs": [tx.to_wire() for tx in self.stake_txs],
            "message": self.message,
            "time_ms": self.time_ms,
        }

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Commit:
        parents = wire_list("commit.parents", wire["parents"])
        txs = wire_list("commit.stake_txs", wire["stake_txs"])
        return cls(
            target=wire_cid("commit.target", wire["target"]),
            parents=tuple(wire_cid(f"commit.parents[{i}]", p) for i, p in enumerate(parents)),
            tree=wire_cid("commit.tree", wire["tree"]),
            author=wire["author"],
            claim=nested("commit", lambda: Claim.from_wire(wire["claim"])),
            stake_txs=tuple(nested(f"commit.stake_txs[{i}]", lambda t=t: StakeTx.from_wire(t))
                            for i, t in enumerate(txs)),
            message=wire["message"],
            time_ms=wire["time_ms"],
        )


def _check_stake_tx(where: str, value: object) -> None:
    if not isinstance(value, StakeTx) or value.sig is None:
        raise fail(where, "expected a signed stake transaction")
