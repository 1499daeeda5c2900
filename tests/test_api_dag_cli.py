"""``poi dag …`` against a real served node (tests/api_support), and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from node.dag_cli import register
from tests.api_support import ApiServer, Scenario, StandInNode, build_scenario, make_target

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Scenario, str]]:
    node = StandInNode(tmp_path_factory.mktemp("cli"), [make_target()])
    scenario = build_scenario(node)
    with ApiServer(node) as server:
        yield scenario, server.url
    node.close()


@pytest.fixture(scope="module")
def poi() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """poi (test copy)"""

    register(app)
    return app


def run(poi, *args: str, env: dict | None = None):
    return CliRunner().invoke(poi, ["dag", *args], env={"COLUMNS": "160", **(env or {})})


def test_status_names_the_node_and_its_targets(poi, served):
    scenario, url = served
    result = run(poi, "status", "--node", url)
    assert result.exit_code == 0, result.output
    assert scenario.node.peer_id in result.output
    assert "api-test-ntt" in result.output and "1.167×" in result.output
    as_json = json.loads(run(poi, "status", "--node", url, "--json").output)
    assert as_json["targets"][0]["cid"] == str(scenario.target.cid)


def test_log_prints_the_canonical_chain_with_speedups(poi, served):
    scenario, url = served
    result = run(poi, "log", "--full", "--node", url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    c1 = next(line for line in lines if str(scenario.cids["c1"]) in line)
    c2 = next(line for line in lines if str(scenario.cids["c2"]) in line)
    assert "radix-4 butterflies" in c1 and "0.9020" in c1 and "1.109×" in c1 and "final" in c1
    assert "montgomery reduction" in c2 and "1.167×" in c2 and "accepted" in c2
    assert lines.index(c1) < lines.index(c2)
    assert str(scenario.cids["bad"]) not in result.output
    by_target = run(poi, "log", "--target", str(scenario.target.cid), "--node", url, "--json")
    assert len(json.loads(by_target.output)["steps"]) == 2


def test_show_prints_status_claim_and_stake(poi, served):
    scenario, url = served
    result = run(poi, "show", str(scenario.cids["bad"]), "--node", url)
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "skip the bit reversal" in result.output
    assert "0 for · 1000 against" in result.output
    assert "ratio 0.7000 in [0.6950, 0.7050] over 7 pairs" in result.output


def test_patch_prints_a_diff_git_can_apply(poi, served):
    scenario, url = served
    result = run(poi, "patch", str(scenario.cids["c2"]), "--node", url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("diff --git a/baby-bear/src/lib.rs b/baby-bear/src/lib.rs\n")
    assert "+    montgomery(x)\n" in result.output


def test_attestations_prints_each_verdict(poi, served):
    scenario, url = served
    result = run(poi, "attestations", str(scenario.cids["c1"]), "--node", url,
                 env={"POI_NODE": url})
    assert result.exit_code == 0, result.output
    assert result.output.count("improved") == 4 and "0.9020" in result.output
    via_env = run(poi, "attestations", str(scenario.cids["c1"]), "--json", env={"POI_NODE": url})
    assert len(json.loads(via_env.output)) == 4


def test_node_url_comes_from_a_status_file(poi, served, tmp_path):
    scenario, url = served
    (tmp_path / "status.json").write_text(json.dumps({"http_url": url}))
    result = run(poi, "show", str(scenario.cids["c1"]), "--data-dir", str(tmp_path))
    assert result.exit_code == 0 and "final" in result.output


def test_errors_are_clear_and_exit_2(poi, served, tmp_path):
    scenario, url = served
    unreachable = run(poi, "log", "--node", "http://127.0.0.1:9")
    assert unreachable.exit_code == 2
    assert "cannot reach the node at http://127.0.0.1:9" in unreachable.output
    no_node = run(poi, "status")
    assert no_node.exit_code == 2 and "--node" in no_node.output
    malformed = run(poi, "show", "not-a-cid", "--node", url)
    assert malformed.exit_code == 2 and "malformed" in malformed.output
    assert "HTTP 400" in malformed.output
    unknown = run(poi, "patch", str(scenario.evidence.cid), "--node", url)
    assert unknown.exit_code == 2 and "not a commit" in unknown.output
    missing = run(poi, "status", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "status.json" in missing.output
    assert "Traceback" not in unreachable.output + malformed.output + missing.output
