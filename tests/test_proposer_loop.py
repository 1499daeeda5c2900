"""The autoresearch loop with the patch strategy on a tiny target, through the real pipeline.

Keeps become signed commits (with tree and blobs) whose claims are the measured ratios;
every other outcome is logged with its status and reverted; a patch that applies nowhere, or
depends on one that was not kept, is reported and skipped; the memory file and the log let a
fresh run resume; budgets and plateaus stop the loop.
"""

from __future__ import annotations

import json

import pytest

from dag.scope import overlay
from proposer.budget import PRICES, Budget, Usage, parse_price, price_of
from proposer.log import ExperimentLog
from proposer.loop import PipelineEvaluator, ProposerLoop
from proposer.strategies.patches import PatchStrategy
from protocol import examples
from protocol.cid import CID
from protocol.objects import Blob, Commit, Tree, decode_object
from verifier.candidates import workspace_from_store

from .proposer_support import (
    BUILD,
    LIB,
    cost_patch,
    patch,
    store_with,
    tiny_genesis,
    tiny_pipeline,
    write_patches,
)

KEY = examples.key(7)


@pytest.fixture
def tiny(tmp_path):
    genesis = tiny_genesis(tmp_path / "tiny")
    store = store_with(tmp_path / "store.sqlite", genesis)
    pipeline = tiny_pipeline(genesis, tmp_path)
    yield genesis, store, pipeline, tmp_path
    store.close()


def make_loop(tiny, patches_dir, **kwargs) -> ProposerLoop:
    genesis, store, pipeline, tmp = tiny
    return ProposerLoop(target=genesis.target, base_tree=genesis.base_tree, store=store, key=KEY,
                        strategy=PatchStrategy.from_directory(patches_dir),
                        evaluator=PipelineEvaluator(pipeline), work_dir=tmp / "work", **kwargs)


STORY = {
    "01-faster.patch": cost_patch(1000, 900, "Faster by a tenth", expect="improved"),
    "02-bug.patch": patch("src/lib.rs", LIB, "fn lde() { /* BUG */ }\n", "Wrong but fast",
                          expect="gate_failed"),
    "03-same-speed.patch": patch("src/lib.rs", LIB, "fn lde() { /* tidy */ }\n", "Tidy up"),
    "04-outside.patch": patch("build.sh", BUILD, BUILD + "echo hi\n", "Tweak the build"),
    "05-stale.patch": patch("src/lib.rs", "fn old_name() {}\n", "fn new_name() {}\n",
                            "Rename a function that no longer exists"),
    "06-syntax.patch": patch("src/lib.rs", LIB, "fn lde() { SYNTAX ERROR }\n", "Broken"),
    "07-needs-bug.patch": patch("src/lib.rs", "fn lde() { /* BUG */ }\n", "fn lde() {}\n",
                                "Fix the bug", depends_on="02-bug.patch"),
    "08-branch.patch": cost_patch(1000, 700, "A different idea on the baseline"),
    "09-on-branch.patch": cost_patch(700, 630, "Builds on 08", depends_on="08-branch.patch"),
}


def test_patch_run_keeps_discards_skips_and_signs(tiny, tmp_path):
    genesis, store, _, _ = tiny
    target = genesis.target
    loop = make_loop(tiny, write_patches(tmp_path / "patches", STORY))
    assert loop.run() == "the strategy has nothing more to propose"
    rows = ExperimentLog(tmp_path / "work" / "log.jsonl").rows()
    assert [(r.patch, r.status) for r in rows] == [
        ("01-faster.patch", "keep"), ("02-bug.patch", "gate_failed"),
        ("03-same-speed.patch", "discard"), ("04-outside.patch", "scope_violation"),
        ("05-stale.patch", "skipped"), ("06-syntax.patch", "crash"),
        ("07-needs-bug.patch", "skipped"), ("08-branch.patch", "keep"),
        ("09-on-branch.patch", "keep")]
    by = {r.patch: r for r in rows}
    assert [r.iteration for r in rows] == list(range(1, 10))

    # Measured rows carry the exact ratio; the others say why they failed.
    assert (by["01-faster.patch"].ratio_ppm, by["01-faster.patch"].hi_ppm) == (900_000, 900_000)
    assert by["03-same-speed.patch"].ratio_ppm == 1_000_000
    assert by["03-same-speed.patch"].is_near_miss()
    assert "gate failed" in by["02-bug.patch"].detail and by["02-bug.patch"].expected == \
        "gate_failed"
    assert "build.sh" in by["04-outside.patch"].detail
    assert "SYNTAX ERROR" in by["06-syntax.patch"].detail
    assert by["06-syntax.patch"].result == "build_failed"
    assert "no longer applies" in by["05-stale.patch"].detail
    assert "02-bug.patch, which ended gate_failed" in by["07-needs-bug.patch"].detail
    assert by["05-stale.patch"].tree is None and by["05-stale.patch"].diff == ""
    assert "+900" in by["01-faster.patch"].diff
    # A patch that does not apply to the best (01) applies to the start: a branch.
    first, branch, stacked = (CID.parse(by[n].commit) for n in
                              ("01-faster.patch", "08-branch.patch", "09-on-branch.patch"))
    assert by["02-bug.patch"].parent == str(first)
    assert by["08-branch.patch"].parent == str(target.cid)
    assert by["09-on-branch.patch"].parent == str(branch)
    assert loop.best.commit == stacked

    # Kept commits: signed by the proposer, stored with tree and blobs, claims as measured.
    for cid, parent, ratio in ((first, target.cid, 900_000), (branch, target.cid, 700_000),
                               (stacked, branch, 900_000)):
        commit = store.get(cid)
        assert isinstance(commit, Commit)
        commit.verify()
        assert decode_object(commit.encode()) == commit
        assert commit.author == KEY.public_key and commit.parents == (parent,)
        assert commit.claim.ratio_ppm == ratio and commit.claim.pairs == 6
        assert commit.claim.profile == target.profile
        tree = store.get(commit.tree)
        assert isinstance(tree, Tree)
        assert all(isinstance(store.get(e.blob), Blob) for e in tree.entries.values())
    workspace = workspace_from_store(store, target, stacked)
    assert workspace.read_blob(workspace.entries["src/cost.txt"].blob) == b"630\n"
    assert store.get(first).message.startswith("Faster by a tenth")

    # The memory file: objective, a line per win and per dead end.
    memory = (tmp_path / "work" / "memory.md").read_text()
    assert "## Objective" in memory and "lde_ns" in memory
    wins = memory.split("## Wins")[1].split("##")[0]
    dead = memory.split("## Dead ends")[1].split("##")[0]
    assert "+10.00%" in wins and "+30.00%" in wins and "patch 09-on-branch.patch" in wins
    for line in ("#2 gate_failed: patch 02-bug.patch",
                 "#3 discard (not_improved): ratio 1.0000, patch 03-same-speed.patch",
                 "#4 scope_violation: patch 04", "#6 crash (build_failed): patch 06"):
        assert line in dead, dead
    assert "05-stale" not in memory  # skipped patches are not experiments
    assert "SYNTAX" not in memory  # program output never enters the (trusted) memory file


def test_a_fresh_run_resumes_from_the_log_and_memory(tiny, tmp_path):
    genesis = tiny[0]
    patches = write_patches(tmp_path / "patches", {
        "01-faster.patch": cost_patch(1000, 900, "Faster"),
        "02-bug.patch": patch("src/lib.rs", LIB, "fn lde() { /* BUG */ }\n", "Bug"),
        "03-more.patch": cost_patch(900, 800, "Faster still")})
    first = make_loop(tiny, patches, budget=Budget(max_iterations=2))
    assert first.run().startswith("iteration budget reached")
    kept = first.best.commit
    memory_before = (tmp_path / "work" / "memory.md").read_text()
    assert "patch 01-faster.patch" in memory_before

    write_patches(patches, {"04-on-first.patch": cost_patch(900, 850, "Another on 01",
                                                            depends_on="01-faster.patch")})
    second = make_loop(tiny, patches)
    assert second.resumed_from == kept and second.best.commit == kept
    assert second.iteration == 3
    second.run()
    rows = ExperimentLog(tmp_path / "work" / "log.jsonl").rows()
    assert [(r.iteration, r.patch, r.status) for r in rows] == [
        (1, "01-faster.patch", "keep"), (2, "02-bug.patch", "gate_failed"),
        (3, "03-more.patch", "keep"), (4, "04-on-first.patch", "keep")]
    assert rows[2].parent == str(kept) and rows[3].parent == str(kept)
    memory = (tmp_path / "work" / "memory.md").read_text()
    assert memory.startswith(memory_before.split("## Dead ends")[0].split("## Wins")[0])
    assert "#1 +10.00%" in memory and "#3 +11.11%" in memory and "#2 gate_failed" in memory
    # --fresh: the log goes on, the base is the start again.
    third = make_loop(tiny, patches, resume=False)
    assert third.best.commit == genesis.target.cid and third.iteration == 5


def test_plateau_stops_the_loop(tiny, tmp_path):
    same = {f"0{i}-noop.patch": patch("src/lib.rs", LIB, f"fn lde() {{ /* {i} */ }}\n",
                                      f"Cosmetic {i}") for i in range(1, 6)}
    loop = make_loop(tiny, write_patches(tmp_path / "patches", same), budget=Budget(plateau=3))
    assert loop.run() == "plateau: 3 experiments in a row without a keep"
    assert [r.status for r in loop.log.rows()] == ["discard"] * 3


def test_duplicate_code_is_not_measured_twice(tiny, tmp_path):
    loop = make_loop(tiny, write_patches(tmp_path / "patches", {
        "01-a.patch": patch("src/lib.rs", LIB, "fn lde() { /* a */ }\n", "A"),
        "02-again.patch": patch("src/lib.rs", LIB, "fn lde() { /* a */ }\n", "A again"),
        "03-nothing.patch": "Title: nothing\n\n"}))
    loop.run()
    rows = loop.log.rows()
    assert [r.status for r in rows] == ["discard", "skipped", "skipped"]
    assert rows[1].detail == "same code as #1 on the same parent (discard)"


def test_budgets_stop_on_iterations_tokens_dollars_and_plateau():
    usage = Usage()
    usage.add_response({"input_tokens": 1_000, "output_tokens": 2_000,
                        "cache_creation_input_tokens": 10_000,
                        "cache_read_input_tokens": 100_000}, price_of("claude-sonnet-4-5")[0])
    price = PRICES["claude-sonnet-4"]
    assert usage.cost_usd == pytest.approx((1_000 * price.input + 2_000 * price.output
                                            + 10_000 * price.cache_write
                                            + 100_000 * price.cache_read) / 1e6)
    assert usage.total_tokens == 113_000
    assert price_of("claude-opus-4-5-x")[0].input == 5.0
    assert price_of("some-new-model") == (PRICES["claude-opus-4"], False)
    assert parse_price("3,15") == PRICES["claude-sonnet-4"]
    with pytest.raises(ValueError, match="IN,OUT"):
        parse_price("3")

    assert Budget().stop_reason() is None
    budget = Budget(max_iterations=2)
    budget.charge(Usage(), "keep", evaluated=True)
    assert budget.stop_reason() is None
    budget.charge(Usage(), "skipped", evaluated=False)
    assert budget.stop_reason() is None
    budget.charge(Usage(), "discard", evaluated=True)
    assert budget.stop_reason() == "iteration budget reached (2 of 2)"
    tokens = Budget(max_tokens=200_000)
    tokens.charge(usage, "discard", evaluated=True)
    assert tokens.stop_reason() is None
    assert tokens.stop_reason(pending=usage).startswith("token budget reached (226,000")
    dollars = Budget(max_dollars=0.15)  # 0.1005 per usage
    dollars.charge(usage, "keep", evaluated=True)
    assert dollars.stop_reason() is None
    dollars.charge(usage, "keep", evaluated=True)
    assert dollars.stop_reason() == "dollar budget reached ($0.20 of $0.15)"
    plateau = Budget(plateau=2)
    for status in ("discard", "keep", "crash", "gate_failed"):
        plateau.charge(Usage(), status, evaluated=True)
    assert plateau.stop_reason() == "plateau: 2 experiments in a row without a keep"


def test_log_rows_are_complete_json(tiny, tmp_path):
    loop = make_loop(tiny, write_patches(tmp_path / "patches", {
        "01.patch": cost_patch(1000, 900, "Faster")}))
    loop.run()
    row = json.loads((tmp_path / "work" / "log.jsonl").read_text().splitlines()[0])
    for key in ("iteration", "parent", "tree", "commit", "status", "result", "ratio_ppm",
                "lo_ppm", "hi_ppm", "pairs", "tokens", "cost_usd", "description", "hypothesis",
                "diff", "detail", "eval_s"):
        assert key in row, key
    assert row["status"] == "keep" and row["tokens"]["input"] == 0
    commit = loop.store.get(CID.parse(row["commit"]))
    assert row["tree"] == str(commit.tree)
    entries = overlay(loop.base_tree, loop.target.writable, loop.store.get(commit.tree))
    assert set(entries) == set(loop.base_tree.entries)
