"""SIGKILL the store's writer at random moments: nothing acknowledged is lost, indices agree."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from dag.store import Store
from protocol.cid import CID

ROOT = Path(__file__).resolve().parents[1]
KILLS = 25


def _run_and_kill(db: Path, seed: int, rng: random.Random) -> list[CID]:
    """Start a writer, let it acknowledge a random number of objects, kill -9 it mid-stream."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", str(db), str(seed)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: list[CID] = []
    try:
        wanted = rng.randint(1, 120)
        deadline = time.monotonic() + 60
        while len(acked) < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read()[-2000:]}")
            acked.append(CID.parse(line.split()[1]))
        # Let it run on into the next transactions for a random moment, then kill it.
        end = time.monotonic() + rng.uniform(0, 0.05)
        while time.monotonic() < end:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        # Acks written before the kill but not yet read still count: the put had returned.
        rest, _ = proc.communicate(timeout=30)
        acked.extend(CID.parse(line.split()[1]) for line in rest.splitlines()
                     if line.startswith("ack "))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return acked


def test_sigkill_at_random_moments_loses_no_acknowledged_object(tmp_path):
    db = tmp_path / "crash.sqlite"
    rng = random.Random(7)
    all_acked: list[CID] = []
    for run in range(KILLS):
        all_acked.extend(_run_and_kill(db, run, rng))
        with Store(db) as store:
            lost = [c for c in all_acked if not (store.has(c) or store.is_pending(c))]
            assert lost == [], f"run {run}: {len(lost)} acknowledged objects lost"
            for cid in all_acked:
                if store.has(cid):
                    obj = store.get(cid)  # decodes and checks the hash
                    assert obj.cid == cid
            assert store.check_integrity() == [], f"run {run}"
    assert len(all_acked) > KILLS * 5
