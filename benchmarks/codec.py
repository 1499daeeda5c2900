"""Codec and signature throughput beside the raw Ed25519 verify rate measured in the same run.

    .venv/bin/python benchmarks/codec.py [--seconds 0.5] [--runs 5]

The ratio column is what matters: a node's ingest of attestations is bound by signature
verification, so decoding + validating + verifying an attestation should cost little more than
the bare Ed25519 verify it contains.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The repository in place of this folder at the head of sys.path: run as a script, the
# folder would come first, and benchmarks/http.py would shadow the stdlib's http package
# (libp2p's Prometheus exporter, for one, imports http.server).
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import examples
from protocol.cid import cid_of_object_bytes
from protocol.encoding import encode
from protocol.objects import Attestation, Commit


def rate(fn: Callable[[], object], seconds: float, runs: int) -> float:
    """Median operations per second over ``runs`` timed windows of about ``seconds`` each."""
    samples = []
    for _ in range(runs):
        count, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(50):
                fn()
            count += 50
            now = time.perf_counter()
            if now >= deadline:
                break
        samples.append(count / (now - start))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    raw_key = Ed25519PrivateKey.generate()
    raw_pub = raw_key.public_key()
    message = b"m" * 300
    raw_sig = raw_key.sign(message)

    att = examples.attestation()
    att_bytes = att.encode()
    commit = examples.commit()
    commit_bytes = commit.encode()
    key = examples.key(1)
    wire = att.to_wire()

    def decode_validate_verify() -> None:
        Attestation.decode(att_bytes).verify()

    cases: list[tuple[str, Callable[[], object]]] = [
        ("raw Ed25519 verify (reference)", lambda: raw_pub.verify(raw_sig, message)),
        ("raw Ed25519 sign", lambda: raw_key.sign(message)),
        ("attestation encode+hash", lambda: cid_of_object_bytes(encode(wire))),
        ("attestation decode+validate", lambda: Attestation.decode(att_bytes)),
        ("attestation sign", lambda: att.signed(key)),
        ("attestation verify", att.verify),
        ("attestation decode+validate+verify", decode_validate_verify),
        ("commit decode+validate", lambda: Commit.decode(commit_bytes)),
        ("commit verify (incl. stake tx)", commit.verify),
    ]
    print(f"attestation: {len(att_bytes)} bytes; commit: {len(commit_bytes)} bytes; "
          f"median of {args.runs} windows of {args.seconds}s")
    reference = None
    print(f"{'operation':40} {'ops/s':>12} {'µs/op':>9} {'vs raw verify':>14}")
    for name, fn in cases:
        ops = rate(fn, args.seconds, args.runs)
        reference = reference or ops
        print(f"{name:40} {ops:12,.0f} {1e6 / ops:9.1f} {ops / reference:13.2f}x")


if __name__ == "__main__":
    main()
