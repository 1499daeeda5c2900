"""``poi node status`` and ``poi node run`` argument handling (node/run_cli.py)."""

from __future__ import annotations

import json
import os

import typer
from typer.testing import CliRunner

from node.run_cli import register


def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """poi"""

    register(root)
    return root


def test_status_reads_status_json_and_exits_0_only_for_a_running_node(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app(), ["node", "status", str(tmp_path)])
    assert missing.exit_code == 2 and "never run here" in missing.output
    doc = {"pid": os.getpid(), "phase": "running", "name": "n1", "peer_id": "12D3KooW",
           "roles": ["observer"], "listen_addrs": ["/ip4/127.0.0.1/tcp/1"], "http_url": None,
           "peers": [], "synced": True, "pending_objects": 0,
           "chains": {"bafy": {"name": "t", "head": "h", "finalized": "f", "epoch": 3,
                               "commits": 5, "attestations": 9}}}
    (tmp_path / "status.json").write_text(json.dumps(doc))
    running = runner.invoke(app(), ["node", "status", str(tmp_path)])
    assert running.exit_code == 0, running.output
    assert "running" in running.output and "commits 5" in running.output
    as_json = runner.invoke(app(), ["node", "status", str(tmp_path), "--json"])
    assert json.loads(as_json.output)["alive"] is True
    (tmp_path / "status.json").write_text(json.dumps({**doc, "pid": 2**22 + 12345}))
    dead = runner.invoke(app(), ["node", "status", str(tmp_path)])
    assert dead.exit_code == 1 and "not running" in dead.output


def test_run_refuses_a_directory_without_a_config(tmp_path):
    result = CliRunner().invoke(app(), ["node", "run", str(tmp_path)])
    assert result.exit_code == 2 and "poi init" in result.output
