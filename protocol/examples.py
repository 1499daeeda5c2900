"""Deterministic example objects built from fixed seeds.

The known-answer vectors (tests/vectors/), the property tests and the benchmarks all start from
these, so another implementation can rebuild exactly the same objects and compare bytes, CIDs
and signatures with ours.
"""

from __future__ import annotations

import hashlib

from .cid import CID
from .keys import SigningKey
from .objects import (
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commands,
    Commit,
    Evidence,
    Ruling,
    StakeTx,
    Target,
    Tree,
    TreeEntry,
    Validator,
    Verdict,
)

GENESIS_TIME_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""


def key(index: int) -> SigningKey:
    """Example key ``index``: the seed is sha256 of ``poi-example-key-<index>``."""
    return SigningKey(hashlib.sha256(f"poi-example-key-{index}".encode()).digest())


def blob(text: str = "fn main() {}\n") -> Blob:
    return Blob(text.encode())


def tree(files: dict[str, str] | None = None) -> Tree:
    files = files or {"dft/src/lib.rs": "pub fn dft() {}\n", "baby-bear/src/lib.rs": "// p\n"}
    return Tree({path: TreeEntry(blob(body).cid, 0o644) for path, body in files.items()})


def target(validators: int = 4) -> Target:
    base = tree({
        "Cargo.toml": "[workspace]\n",
        "dft/src/lib.rs": "pub fn dft() {}\n",
        "baby-bear/src/lib.rs": "// p\n",
        "gate/src/main.rs": "fn main() {}\n",
    })
    return Target(
        name="example-ntt",
        description="an example target",
        base_tree=base.cid,
        writable=("baby-bear/src/**", "dft/src/**"),
        metric="lde_ns",
        profile="avx2",
        commands=Commands(
            build=("cargo", "build", "--release", "--offline"),
            gate=("target/release/gate", "--seed", "{seed}"),
            bench=("target/release/bench", "--seed", "{seed}"),
        ),
        validators=tuple(sorted(
            (Validator(key(i).public_key, 100 * (i + 1)) for i in range(validators)),
            key=lambda v: v.key,
        )),
        genesis_time_ms=GENESIS_TIME_MS,
    )


def claim(ratio_ppm: int = 970_000) -> Claim:
    return Claim(profile="avx2", ratio_ppm=ratio_ppm, lo_ppm=ratio_ppm - 10_000,
                 hi_ppm=ratio_ppm + 5_000, pairs=7)


def stake_tx(account: int = 1, nonce: int = 0) -> StakeTx:
    return StakeTx.create(key(account), target=target().cid, op="bond", amount=50, nonce=nonce)


def commit(parent: CID | None = None, author: int = 0, message: str = "twiddle-free layer 0"
           ) -> Commit:
    tgt = target()
    return Commit.create(
        key(author), target=tgt.cid, parents=[parent or tgt.cid], tree=tree().cid,
        claim=claim(), time_ms=GENESIS_TIME_MS + 90_000, message=message,
        stake_txs=[stake_tx()],
    )


def verdict(result: str = "improved") -> Verdict:
    c = commit()
    measured = result in ("improved", "not_improved")
    return Verdict(
        commit=c.cid, parent=c.parents[0], result=result,
        ratio_ppm=968_000 if measured else 0, lo_ppm=961_000 if measured else 0,
        hi_ppm=975_000 if measured else 0, pairs=15 if measured else 0,
        gate_seed=hashlib.sha256(b"gate-seed").digest(), profile="avx2",
        toolchain="rustc 1.95.0",
    )


def attestation(verifier: int = 1, seq: int = 0, result: str | None = "improved",
                prev: CID | None = None) -> Attestation:
    c = commit()
    if seq and prev is None:
        prev = target().cid  # any CID: chains are checked by the DAG, not the schema
    return Attestation.create(
        key(verifier), target=c.target, seq=seq, prev=prev, epoch=2,
        time_ms=GENESIS_TIME_MS + 150_000, head=c.cid,
        verdict=None if result is None else verdict(result),
    )


def evidence() -> Evidence:
    return Evidence.create(key(3), attestation(result="improved"),
                           attestation(result="gate_failed"))


def challenge() -> Challenge:
    return Challenge.create(key(2), attestation(verifier=1), anchor=target().cid, bond=25,
                            nonce=0)


def ruling() -> Ruling:
    return Ruling.create(key(3), target=target().cid, challenge=challenge().cid,
                         gate_passed=True, toolchain="rustc 1.95.0")


def all_objects() -> dict[str, object]:
    """One example of every object type, by name."""
    return {
        "blob": blob(), "tree": tree(), "target": target(), "commit": commit(),
        "attestation": attestation(), "attestation_vote_only": attestation(result=None),
        "stake": stake_tx(), "evidence": evidence(), "challenge": challenge(),
        "ruling": ruling(),
    }
