"""``poi devnet --exit-when-done`` end to end: real node processes on 127.0.0.1, the quick
example target, the adversary's hostile commits and a lying verifier; then every node's own
HTTP answers (recorded by the devnet in summary.json just before it stops them) must show what
the demo promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.objects import REJECTING_RESULTS

POI = Path(sys.executable).with_name("poi")

PPM = 1_000_000

pytestmark = [
    pytest.mark.slow,
]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(600)
def test_devnet_ends_with_verified_chain_rejections_slash_and_one_final_head(tmp_path):
    root = tmp_path / "devnet"
    result = subprocess.run(
        [str(POI), "devnet", "--dir", str(root), "--exit-when-done", "--timeout", "420"],
        capture_output=True, text=True, timeout=580, env={**os.environ, "COLUMNS": "120"})
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-4000:]
    assert result.returncode == 0, output[-4000:]
    assert output.lstrip().startswith("Dashboard: http://127.0.0.1:")

    devnet = json.loads((root / "devnet.json").read_text())
    report = json.loads((root / "summary.json").read_text())
    assert report["done"] and not report["missing"]
    target = devnet["target"]
    keys = {n["name"]: n["public_key"] for n in devnet["nodes"]}
    proposers = {keys[n["name"]] for n in devnet["nodes"] if "proposer" in n["roles"]}
    byzantine = keys["byzantine"]
    genesis_stake = {n["name"]: n["stake"] for n in devnet["nodes"]}
    assert devnet["byzantine"] == "lie"
    assert 0 < 3 * genesis_stake["byzantine"] < sum(genesis_stake.values())  # under 1/3
    hostile = set(report["hostile"])
    assert len(hostile) == len(devnet["hostile"]) >= 5

    nodes = report["nodes"]
    assert set(nodes) == set(keys)
    chains = set()
    slashes = set()
    ledgers = {}
    for name, answers in nodes.items():
        assert not answers.get("errors"), (name, answers.get("errors"))
        heads, chain = answers["heads"], answers["chain"]
        # one final head, the same on every node
        assert heads["head"] == heads["finalized"], name
        steps = [s for s in chain["steps"] if s["cid"] != target]
        chains.add((heads["head"], tuple(s["cid"] for s in steps)))
        # a canonical chain of gate-passing improvements only, with a cumulative speed-up
        assert steps, name
        assert all(s["final"] for s in steps), name
        assert all(s["author"] in proposers for s in steps), name
        assert not hostile & {s["cid"] for s in steps}, name
        assert all(s["ratio_ppm"] is not None and s["ratio_ppm"] < PPM for s in steps), name
        assert chain["speedup"] > 1.0 and steps[-1]["cumulative_ppm"] < PPM, name
        # every hostile commit rejected, for a failure the honest verifiers measured
        rejected = {r["cid"]: r for r in answers["rejected"]}
        for cid in hostile:
            assert cid in rejected, (name, cid, report["hostile"][cid])
            reasons = rejected[cid]["reasons"]
            against = sum(n for r, n in reasons.items() if r in REJECTING_RESULTS)
            assert against >= 2, (name, reasons)
        # the Byzantine verifier slashed and ejected
        stakes = answers["stakes"]
        # (the devnet's default Byzantine mode lies: a challenge of its claim that a
        # gate-failing commit passed the gate slashes it)
        assert any(s["offender"] == byzantine and s["amount"] > 0
                   and s["reason"] == "false_gate_claim" for s in stakes["slashes"]), name
        account = next(a for a in stakes["accounts"] if a["key"] == byzantine)
        assert account["ejected"], name
        slashes.add(tuple(sorted((s["offender"], s["reason"], s["amount"])
                                 for s in stakes["slashes"])))
        # the final commits paid their proposers
        paid = {r["account"] for r in stakes["rewards"] if r["kind"] == "proposer"}
        assert paid and paid <= proposers, name
        ledgers[name] = (
            sorted(tuple(sorted(a.items())) for a in stakes["accounts"]),
            sorted(tuple(sorted(r.items())) for r in stakes["rewards"]),
            stakes["minted"], stakes["burned"], stakes["ledger_epoch"])
    assert len(chains) == 1, chains  # all nodes on the same head, with the same chain
    assert len(slashes) == 1, slashes  # and every node applied the same slashes
    reference = ledgers[next(iter(ledgers))]
    # and every node reports the same balances, rewards, minted and burned
    assert all(ledger == reference for ledger in ledgers.values()), ledgers

    # --exit-when-done stopped every node it started
    assert not [name for name, pid in report["pids"].items() if alive(pid)]
    for name in keys:
        assert (root / "logs" / f"{name}.log").stat().st_size > 0
