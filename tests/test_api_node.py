"""The HTTP API of a real node process (``python -m node.run_cli node run DIR``).

Starts one observer node with the HTTP API on a free port, then drives it only over HTTP: a
signed commit and its verdicts go in by ``POST /v1/commits`` exactly as a wallet or proposer
would send them, and the node's answers (commit status, canonical chain, events, metrics, the
page, ``poi dag log``) must reflect them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from node.bundle import encode_bundle
from node.dag_cli import register
from node.genesis_file import encode_genesis_file
from tests.api_support import wait_for
from tests.node_support import Feed, NodeProcess, init_node_dir, make_test_genesis

pytestmark = pytest.mark.timeout(180)
BUNDLE = {"content-type": "application/x-poi-bundle"}


@pytest.fixture
def node(tmp_path) -> Iterator[tuple[NodeProcess, Feed, str]]:
    genesis = make_test_genesis(tmp_path / "genesis", epoch_seconds=60)
    directory = tmp_path / "api-node"
    init_node_dir(directory, "api-node", genesis_file=encode_genesis_file(genesis), http=True)
    process = NodeProcess("api-node", directory).start()
    try:
        status = process.wait(lambda d: d.get("ready") is True and d.get("http_url"), 60,
                              "ready with an HTTP URL")
        yield process, Feed(genesis), status["http_url"]
    finally:
        assert process.terminate(timeout=15) == 0, process.log_tail()


def test_a_real_node_serves_the_api_and_takes_commits_over_http(node):
    process, feed, url = node
    target = str(feed.target.cid)
    events: list[dict] = []
    subscribed = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=30)) as stream_client, \
                stream_client.stream("GET", "/v1/events", params={"kinds": "commit,final"}
                                     ) as response:
            subscribed.set()
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append({"event": kind, **json.loads(line[len("data: "):])})
                    if kind == "final":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    with httpx.Client(base_url=url, timeout=10) as client:
        status = client.get("/v1/status").json()
        assert status["peer_id"] == process.peer_id and status["http_url"] == url
        assert status["targets"] == [target]
        info = client.get(f"/v1/targets/{target}").json()
        assert info["head"] == target and info["commit_count"] == 0

        listener.start()
        assert subscribed.wait(10)
        wait_for(lambda: b"poi_event_subscribers 1.0" in client.get("/metrics").content,
                 what="the event subscription")
        commit, tree, blob = feed.commit()
        posted = client.post("/v1/commits", headers=BUNDLE, content=encode_bundle(
            [commit.encode(), tree.encode(), blob.data]))
        assert posted.status_code == 200, posted.text
        assert posted.json()["accepted"][0] == str(commit.cid)
        shown = client.get(f"/v1/commits/{commit.cid}").json()
        assert shown["status"] == "pending" and shown["parents"] == [target]
        assert "+pub fn f() { /* version 1 */ }" in client.get(
            f"/v1/commits/{commit.cid}/patch").text

        verdicts = feed.endorse(commit)  # every validator: improved, head vote for it
        posted = client.post("/v1/commits", headers=BUNDLE,
                             content=encode_bundle([a.encode() for a in verdicts]))
        assert posted.status_code == 200, posted.text
        wait_for(lambda: client.get(f"/v1/commits/{commit.cid}").json()["status"] == "final",
                 timeout_s=20, what="the commit to become final")
        chain = client.get(f"/v1/targets/{target}/chain").json()
        assert [s["cid"] for s in chain["steps"]] == [str(commit.cid)]
        assert chain["speedup"] == pytest.approx(1e6 / 950_000)
        assert len(client.get(f"/v1/commits/{commit.cid}/attestations").json()) == 4
        assert client.get("/v1/commits/not-a-cid").status_code == 400
        assert client.post("/v1/commits", headers=BUNDLE, content=b"\x00").status_code == 400
        assert client.post("/v1/patches", json={"patch": "x"}).status_code == 409
        assert "<svg" in client.get("/").text
        metrics = {s.name: s.value for f in text_string_to_metric_families(
            client.get("/metrics").text) for s in f.samples if not s.labels}
        assert metrics["poi_synced"] == 1 and metrics["poi_verification_queue_length"] == 0

    listener.join(20)
    assert not listener.is_alive(), events
    kinds = [e["event"] for e in events]
    assert kinds[0] == "commit" and events[0]["cid"] == str(commit.cid)
    assert "final" in kinds

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    log = CliRunner().invoke(app, ["dag", "log", "--full", "--node", url],
                             env={"COLUMNS": "200"})
    assert log.exit_code == 0, log.output
    assert str(commit.cid) in log.output and "1.053×" in log.output
