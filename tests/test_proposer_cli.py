"""``poi propose``: standalone into a node's data directory, resumed, rendered with --log, and
attached to a running node's HTTP API (start from its head, submit kept commits as bundles)."""

from __future__ import annotations

import struct

import pytest
from typer.testing import CliRunner

from dag.store import Store
from node.cli import app
from node.config import load_config, write_config
from node.keystore import load_key
from proposer.log import ExperimentLog
from protocol.objects import Commit

from .api_support import ApiServer
from .fake_anthropic import API_KEY, FakeAnthropic, reply, tool_use
from .proposer_support import LIB, cost_patch, patch, tiny_genesis, write_patches
from .test_proposer_role import T0, ProposerNode, other_proposers_commit

runner = CliRunner()


def init(data_dir) -> None:
    """`poi init`, with a private benchmark lock (the host-wide one is shared with anything
    else benchmarking on this machine)."""
    result = runner.invoke(app, ["init", str(data_dir), "--dev-unencrypted-key"])
    assert result.exit_code == 0, result.output
    config = load_config(data_dir)
    config.verifier.bench_lock = str(data_dir / "bench.lock")
    write_config(data_dir, config)


def test_propose_standalone_resume_and_render_the_log(tmp_path):
    tiny_genesis(tmp_path / "tiny")
    manifest = tmp_path / "tiny" / "targets" / "tiny.toml"
    data = tmp_path / "node"
    init(data)
    patches = write_patches(tmp_path / "patches", {
        "01-faster.patch": cost_patch(1000, 900, "Faster"),
        "02-bug.patch": patch("src/lib.rs", LIB, "fn lde() { /* BUG */ }\n", "Bug")})
    args = ["propose", "--target", str(manifest), "--data-dir", str(data), "--patches",
            str(patches), "--work-dir", str(tmp_path / "work")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "local-only target" in result.output
    assert "#1 keep" in result.output and "#2 gate_failed" in result.output
    assert "stopped: the strategy has nothing more to propose" in result.output

    key = load_key(data / "keys", None).key
    with Store(data / "store.sqlite") as store:
        commits = [store.get(c) for c in store.commits_of(store.targets()[0])]
    assert len(commits) == 1 and isinstance(commits[0], Commit)
    commits[0].verify()
    assert commits[0].author == key.public_key and commits[0].claim.ratio_ppm == 900_000

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert f"starting from {commits[0].cid} (resumed from the log)" in again.output

    png = tmp_path / "run.png"
    shown = runner.invoke(app, ["propose", "--log", str(tmp_path / "work" / "log.jsonl"),
                                "--plot", str(png)])
    assert shown.exit_code == 0, shown.output
    assert "keep 1, gate_failed 1" in shown.output and "best speed-up over the start: 1.111x" \
        in shown.output
    data_png = png.read_bytes()
    assert data_png[:8] == b"\x89PNG\r\n\x1a\n" and data_png[12:16] == b"IHDR"
    assert struct.unpack(">II", data_png[16:24]) == (760, 420)


def test_propose_without_an_api_key_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    tiny_genesis(tmp_path / "tiny")
    init(tmp_path / "node")
    result = runner.invoke(app, ["propose", "--target", str(tmp_path / "tiny/targets/tiny.toml"),
                                 "--data-dir", str(tmp_path / "node"), "--strategy", "claude"])
    assert result.exit_code == 2
    assert "ANTHROPIC_API_KEY is not set" in result.output
    assert ("Traceback" not in result.output and result.exception is None) or \
        isinstance(result.exception, SystemExit)


def test_propose_errors_are_messages(tmp_path):
    init(tmp_path / "node")
    for args, message in (
            ([], "needs --target MANIFEST and --data-dir"),
            (["--target", str(tmp_path / "none.toml"), "--data-dir", str(tmp_path / "node"),
              "--patches", str(tmp_path)], "none.toml"),
            (["--log", str(tmp_path / "none.jsonl")], "does not exist")):
        result = runner.invoke(app, ["propose", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_propose_attached_to_a_node_starts_from_its_head_and_submits(tmp_path):
    genesis = tiny_genesis(tmp_path / "tiny")
    node = ProposerNode(tmp_path / "running", [(genesis.target, genesis.base_tree,
                                                list(genesis.blobs.values()))], now_ms=T0)
    chain = node.chains[genesis.target.cid]
    node.ingest(other_proposers_commit(node, genesis, tmp_path, 950))
    head = chain.head
    assert head != genesis.target.cid
    data = tmp_path / "proposer-node"
    init(data)
    patches = write_patches(tmp_path / "patches", {
        "01-faster.patch": cost_patch(950, 900, "Faster than the head"),
        "02-stale.patch": cost_patch(1000, 800, "Written against the baseline")})
    with ApiServer(node) as server:
        result = runner.invoke(app, [
            "propose", "--target", str(tmp_path / "tiny" / "targets" / "tiny.toml"),
            "--data-dir", str(data), "--patches", str(patches), "--node", server.url,
            "--work-dir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert f"starting from the node's head {head} (1 commits)" in result.output
    assert "#2 skipped" in result.output and "submitted" in result.output
    kept = chain.index.children(head)
    assert len(kept) == 1
    commit = node.store.get(kept[0])
    assert commit.parents == (head,) and commit.claim.ratio_ppm == round(900 / 950 * 1e6)
    assert commit.author == load_key(data / "keys", None).key.public_key
    assert node.store.has(commit.tree) and chain.knows(commit.cid)
    with Store(data / "store.sqlite") as local:  # kept here too, waiting for the head
        assert local.is_pending(commit.cid) and local.has(commit.tree)
        assert local.has(genesis.target.cid)


def test_propose_with_claude_through_the_cli(tmp_path, monkeypatch):
    tiny_genesis(tmp_path / "tiny")
    init(tmp_path / "node")
    with FakeAnthropic() as fake:
        fake.add(reply(tool_use("edit_file", {"path": "src/cost.txt", "old_text": "1000",
                                              "new_text": "800"}),
                       tool_use("run_experiment", {"description": "Cheaper",
                                                   "hypothesis": "cost is time"})))
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        result = runner.invoke(app, [
            "propose", "--target", str(tmp_path / "tiny/targets/tiny.toml"), "--data-dir",
            str(tmp_path / "node"), "--strategy", "claude", "--model", "claude-new-model",
            "--price", "2,10", "--max-tokens", "4096", "--max-iterations", "1"])
        body = fake.requests[0]
    assert result.exit_code == 0, result.output
    assert "#1 keep ratio 0.8000" in result.output
    assert "stopped: iteration budget reached (1 of 1)" in result.output
    assert body["model"] == "claude-new-model" and body["max_tokens"] == 4096
    assert "no price known" not in result.output
    row, = ExperimentLog(tmp_path / "node/work/propose-tiny/log.jsonl").rows()
    expected = (row.tokens["input"] * 2 + row.tokens["output"] * 10
                + row.tokens["cache_write"] * 2.5 + row.tokens["cache_read"] * 0.2) / 1e6
    assert row.cost_usd == pytest.approx(expected, abs=1e-6) and row.cost_usd > 0
