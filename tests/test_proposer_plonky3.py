"""The proposer on the real example target (examples/plonky3, quick AVX2 profile).

- The patch strategy takes the good example patches, in order, to a chain of signed commits
  that follows their Depends-On headers (01 and 02 both on the baseline, 03…05 on 02); the
  evaluator there is a deterministic stand-in, so this part builds nothing.
- The Claude strategy, with the real anthropic client against a local fake Messages API and
  the real sandboxed pipeline: a keep (patches 02–04 written through the tools: about 30 %
  faster, far from a close call), a discard (back to the baseline: slower), a crash (a syntax
  error), an edit outside the scope refused, and the kept commit re-verified from the store
  exactly as another node's verifier does it.
- The patch strategy through the real pipeline: a large gain kept or discarded by measurement,
  a hostile patch gate_failed, a patch that no longer applies skipped.

Builds are cached in one pipeline work directory for the whole module (about 10 s per new tree).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dag.manifest import load_manifest, make_genesis
from dag.scope import check_scope
from dag.workspace import blob_reader, unified_diff
from proposer.budget import Budget
from proposer.loop import PipelineEvaluator, ProposerLoop
from proposer.strategies.claude import ClaudeStrategy
from proposer.strategies.patches import PatchStrategy
from protocol import examples
from protocol.cid import CID
from protocol.objects import MEASURED_RESULTS, Commit
from verifier.candidates import (
    read_patch,
    workspace_from_store,
    workspace_from_tree,
    workspace_with_patch,
)
from verifier.pipeline import Evaluation, Pipeline
from verifier.stats import estimate_for_target

from .fake_anthropic import API_KEY, FakeAnthropic, reply, tool_use
from .proposer_support import store_with

PLONKY3 = Path(__file__).resolve().parents[1] / "examples" / "plonky3"
GOOD = PLONKY3 / "patches" / "good"
HOSTILE = PLONKY3 / "patches" / "hostile"
STACK = ["02-fused-inverse-scaling.patch", "03-bitrev-free-lde.patch",
         "04-blocked-passes-tables-fused-spread.patch"]
PAIRS = 8
"""Fewer than a verifier's 31 (the quick target's pairs), as a proposer may use; 8 bounds the
interval by its 4th-largest Walsh average, so one or two disturbed pairs cannot flip a 30 %
gain."""
PROPOSER = examples.key(11)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proposer-quick")
    genesis = make_genesis(load_manifest(PLONKY3 / "targets" / "avx2-quick.toml"),
                           [(examples.key(i).public_key, 100) for i in (1, 2, 3)],
                           genesis_time_ms=examples.GENESIS_TIME_MS)
    store = store_with(tmp / "store.sqlite", genesis)
    pipeline = Pipeline(genesis.target, genesis.base_tree, tmp / "eval",
                        bench_lock=tmp / "bench.lock")
    base = workspace_from_tree(genesis.target, genesis.base_tree, None,
                               blob_reader(genesis.blobs), label="baseline")
    stacked = base
    for name in STACK:
        stacked = workspace_with_patch(genesis.target, genesis.base_tree, stacked,
                                       read_patch(GOOD / name), scratch=tmp)
    yield genesis, store, pipeline, base, stacked, tmp
    store.close()


def changed_files(base, candidate) -> dict[str, str]:
    old = base.commit_tree.entries
    return {path: candidate.read_blob(entry.blob).decode()
            for path, entry in candidate.commit_tree.entries.items()
            if old.get(path) != entry}


class AlwaysImproved:
    """A deterministic evaluator: the scope check, then a fixed 5 % gain; no build."""

    def __init__(self, genesis) -> None:
        self.genesis = genesis

    def evaluate(self, parent, candidate) -> Evaluation:
        target = self.genesis.target
        ev = Evaluation(result="scope_violation", gate_seed=bytes(32), profile=target.profile,
                        toolchain="stand-in")
        ev.violations = check_scope(self.genesis.base_tree.entries, candidate.scan,
                                    target.writable, target.limits.max_file_bytes)
        if not ev.violations:
            ev.estimate = estimate_for_target([(1000, 950)] * PAIRS, target.stats,
                                              target.direction)
            ev.result = ev.estimate.verdict
        return ev


def loop_for(quick, strategy, work, evaluator=None, **kwargs) -> ProposerLoop:
    genesis, store, pipeline, *_ = quick
    return ProposerLoop(target=genesis.target, base_tree=genesis.base_tree, store=store,
                        key=PROPOSER, strategy=strategy,
                        evaluator=evaluator or PipelineEvaluator(pipeline, PAIRS),
                        work_dir=work, **kwargs)


def test_good_patches_apply_in_order_along_their_dependencies(quick, tmp_path):
    genesis, store, _, base, _, tmp = quick
    loop = loop_for(quick, PatchStrategy.from_directory(GOOD), tmp_path / "work",
                    AlwaysImproved(genesis))
    loop.run()
    rows = loop.log.rows()
    assert [(r.patch[:2], r.status) for r in rows] == [(f"0{i}", "keep") for i in range(1, 6)]
    commit_of = {r.patch[:2]: r.commit for r in rows}
    parents = {r.patch[:2]: r.parent for r in rows}
    target = str(genesis.target.cid)
    assert parents == {"01": target, "02": target, "03": commit_of["02"],
                       "04": commit_of["03"], "05": commit_of["04"]}
    for row in rows:
        commit = store.get(CID.parse(row.commit))
        assert isinstance(commit, Commit) and commit.author == PROPOSER.public_key
        commit.verify()
    # The final best is exactly the whole stack 02..05 applied to the baseline.
    expected = base
    for name in [*STACK, "05-twiddle-free-butterflies.patch"]:
        expected = workspace_with_patch(genesis.target, genesis.base_tree, expected,
                                        read_patch(GOOD / name), scratch=tmp)
    best = workspace_from_store(store, genesis.target, loop.best.commit)
    assert best.commit_tree.cid == expected.commit_tree.cid
    assert store.get(loop.best.commit).message.startswith("Twiddle-free butterflies")


def test_claude_strategy_keeps_discards_crashes_and_a_verifier_agrees(quick, tmp_path):
    genesis, store, pipeline, base, stacked, _ = quick
    faster = changed_files(base, stacked)
    assert "dft/src/blocked.rs" in faster and "dft/src/blocked.rs" not in base.entries
    original = {p: base.read_blob(base.entries[p].blob).decode() for p in faster
                if p in base.entries}
    lib = base.read_blob(base.entries["baby-bear/src/lib.rs"].blob).decode()
    with FakeAnthropic() as fake:
        fake.add(
            # 1: look around, try to edit the benchmark (refused), write the fast LDE
            reply(tool_use("list_files", {"prefix": "dft/src/"})),
            reply(tool_use("write_file", {"path": "bench/src/main.rs", "content": "fn main(){}"})),
            reply(*[tool_use("write_file", {"path": p, "content": t}) for p, t in faster.items()],
                  tool_use("update_memory", {"notes": "Bit-reversal-free LDE with blocked "
                                                      "passes is the big win."})),
            reply(tool_use("run_experiment", {
                "description": "Bit-reversal-free coset LDE with blocked layers",
                "hypothesis": "no permutation passes, cache-resident layer groups"})),
            # 2: back to the textbook version: measured slower, discarded
            reply(*[tool_use("write_file", {"path": p, "content": t})
                    for p, t in original.items()],
                  tool_use("delete_file", {"path": "dft/src/blocked.rs"}),
                  tool_use("run_experiment", {"description": "Textbook LDE again",
                                              "hypothesis": "simpler code may vectorise"})),
            # 3: a syntax error: the build fails, logged as a crash
            reply(tool_use("write_file", {"path": "baby-bear/src/lib.rs",
                                          "content": lib + "\nfn broken( {\n"}),
                  tool_use("run_experiment", {"description": "Broken edit",
                                              "hypothesis": "none"})))
        strategy = ClaudeStrategy(model="claude-haiku-4-5", api_key=API_KEY, base_url=fake.url,
                                  pairs=PAIRS)
        loop = loop_for(quick, strategy, tmp_path / "work", budget=Budget(max_iterations=3))
        assert loop.run() == "iteration budget reached (3 of 3)"
        assert fake.problems == []
        refusal = fake.requests[2]["messages"][-1]["content"][0]
    rows = loop.log.rows()
    summaries = [f"{r.status}: {r.result} {r.ratio_ppm} {r.detail[:200]}" for r in rows]
    assert [r.status for r in rows] == ["keep", "discard", "crash"], summaries
    keep, discard, crash = rows
    assert keep.ratio_ppm < 850_000 and discard.ratio_ppm > 1_100_000, summaries
    assert crash.result == "build_failed" and "error" in crash.detail
    assert refusal["is_error"] and "outside the writable scope" in refusal["content"][0]["text"]
    assert keep.refused_edits == 1
    assert "big win" in loop.memory.notes

    # The published commit, verified as another node's verifier would: from the store alone.
    commit = store.get(loop.best.commit)
    assert isinstance(commit, Commit) and str(commit.cid) == keep.commit
    commit.verify()
    assert commit.parents == (genesis.target.cid,) and commit.claim.pairs == PAIRS
    candidate = workspace_from_store(store, genesis.target, commit.cid)
    assert candidate.tree_cid == stacked.tree_cid
    parent = workspace_from_store(store, genesis.target, commit.parents[0])
    ev = pipeline.evaluate(parent, candidate, pairs=PAIRS)
    verdict = ev.verdict(commit.cid, commit.parents[0])
    assert verdict.result == "improved", ev.summary()


def test_patch_strategy_through_the_real_pipeline(quick, tmp_path):
    _, store, _, base, stacked, _ = quick
    combined = unified_diff(base.entries, stacked.entries,
                            blob_reader(stacked.blobs, base.read_blob))
    stale = read_patch(GOOD / "03-bitrev-free-lde.patch").text.split("\ndiff --git ", 1)[1]
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "01-stack.patch").write_text("Title: Patches 02-05 in one\n\n" + combined)
    (patches / "02-blend.patch").write_text(
        (HOSTILE / "02-avx2-wrong-blend-mask.patch").read_text())
    (patches / "03-stale.patch").write_text("Title: 03 without its header\n\ndiff --git "
                                            + stale)
    loop = loop_for(quick, PatchStrategy.from_directory(patches), tmp_path / "work")
    loop.run()
    rows = loop.log.rows()
    first, hostile, skipped = rows
    assert first.result in MEASURED_RESULTS and first.status in ("keep", "discard")
    assert hostile.status == "gate_failed" and "gate failed" in hostile.detail
    assert hostile.expected == "gate_failed"
    assert skipped.status == "skipped" and "no longer applies" in skipped.detail
    if first.status == "keep":
        assert hostile.parent == first.commit
        assert store.get(loop.best.commit).claim.ratio_ppm == first.ratio_ppm
