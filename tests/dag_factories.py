"""Build small signed DAGs for store and index tests."""

from __future__ import annotations

import hashlib

from protocol import examples
from protocol.cid import CID
from protocol.objects import Attestation, Commit, Target, Verdict


def make_commit(target: Target, parents: list[CID], n: int, author: int = 0) -> Commit:
    return Commit.create(
        examples.key(author), target=target.cid, parents=parents,
        tree=examples.tree({"dft/src/lib.rs": f"// {n}\n"}).cid, claim=examples.claim(),
        time_ms=target.genesis_time_ms + n, message=f"commit {n}",
    )


def make_attestation(target: Target, verifier: int, seq: int, prev: CID | None, head: CID,
                     verdict_on: Commit | None = None, result: str = "improved") -> Attestation:
    verdict = None
    if verdict_on is not None:
        measured = result in ("improved", "not_improved")
        verdict = Verdict(
            commit=verdict_on.cid, parent=verdict_on.parents[0], result=result,
            ratio_ppm=950_000 if measured else 0, lo_ppm=940_000 if measured else 0,
            hi_ppm=960_000 if measured else 0, pairs=15 if measured else 0,
            gate_seed=hashlib.sha256(bytes(verdict_on.cid)).digest(), profile="avx2",
            toolchain="rustc 1.95.0")
    return Attestation.create(examples.key(verifier), target=target.cid, seq=seq, prev=prev,
                              epoch=0, time_ms=target.genesis_time_ms + seq, head=head,
                              verdict=verdict)
