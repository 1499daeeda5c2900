"""``poi demo``: the newest end-to-end capability, run for real and explained.

Until the devnet exists this walks one improvement through the protocol layer: keys and peer
IDs, a target, a signed commit with its claim, a verifier's signed attestation, canonical
encoding and CIDs, decoding a peer's bytes, and refusing tampered bytes.
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.table import Table

from protocol import (
    Attestation,
    Claim,
    Commit,
    ProtocolError,
    SigningKey,
    Verdict,
    decode_object,
    examples,
)


def run_demo() -> int:
    console = Console()
    console.rule("[bold]poi demo: one improvement through the protocol layer")
    console.print("What exists so far: protocol/ (canonical encoding, CIDs, Ed25519 keys and "
                  "signatures, object schemas). The devnet of real node processes replaces this "
                  "walkthrough once the network layers land.\n")
    proposer, verifier = SigningKey.generate(), SigningKey.generate()
    console.print(f"proposer key  → libp2p peer ID [cyan]{proposer.peer_id}[/]")
    console.print(f"verifier key  → libp2p peer ID [cyan]{verifier.peer_id}[/]")

    target = examples.target()
    console.print(f"target [bold]{target.name}[/] (genesis of its DAG) → [green]{target.cid}[/]")
    now = int(time.time() * 1000)
    commit = Commit.create(
        proposer, target=target.cid, parents=[target.cid], tree=examples.tree().cid,
        claim=Claim(profile="avx2", ratio_ppm=968_000, lo_ppm=960_000, hi_ppm=975_000, pairs=7),
        time_ms=now, message="twiddle-free first layer",
    )
    console.print(f"commit signed by the proposer → [green]{commit.cid}[/] "
                  f"({len(commit.encode())} bytes, claims ratio 0.968)")
    attestation = Attestation.create(
        verifier, target=target.cid, seq=0, prev=None, epoch=0, time_ms=now, head=commit.cid,
        verdict=Verdict(commit=commit.cid, parent=target.cid, result="improved",
                        ratio_ppm=970_500, lo_ppm=964_000, hi_ppm=977_000, pairs=15,
                        gate_seed=os.urandom(32), profile="avx2", toolchain="rustc 1.95.0"),
    )
    console.print(f"attestation signed by the verifier → [green]{attestation.cid}[/]")

    table = Table(title="What a peer receiving these bytes does")
    table.add_column("input")
    table.add_column("outcome")
    for label, data in (("commit bytes", commit.encode()),
                        ("attestation bytes", attestation.encode())):
        obj = decode_object(data)
        obj.verify()
        table.add_row(label, f"[green]accepted[/]: {obj.TYPE} {obj.cid}, signature holds")
    tampered = bytearray(commit.encode())
    tampered[tampered.index(b"twiddle")] ^= 0x20
    try:
        decode_object(bytes(tampered)).verify()
        table.add_row("commit with one byte changed", "[red]ACCEPTED (bug)[/]")
        status = 1
    except ProtocolError as exc:
        table.add_row("commit with one byte changed", f"[yellow]refused[/]: {exc}")
        status = 0
    try:
        decode_object(b"\x81\xa4type\xcb" + bytes(8))
    except ProtocolError as exc:
        table.add_row("a float where a type name belongs", f"[yellow]refused[/]: {exc}")
    console.print(table)
    return status
