"""node.p2p between real processes on 127.0.0.1 (tests/p2p_support/runner.py per node).

Every process a test starts is stopped by its Cluster (exit command, then SIGTERM, then
SIGKILL by PID) when the fixture or test ends, whatever happened. Waits have deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.p2p_support.cluster import Cluster, Node, percentile, wait_until

pytestmark = pytest.mark.slow

TOPIC = "poi/net-test/1"
ECHO, SLOW, ERROR, BIG = "/poi/test/echo/1", "/poi/test/slow/1", "/poi/test/error/1", \
    "/poi/test/big/1"


def peers(node: Node, topic: str = TOPIC) -> dict[str, list[str]]:
    reply = node.ask("peers", cmd="peers", topic=topic)
    return {"connected": reply["peers"], "topic": reply["topic_peers"], "mesh": reply["mesh"]}


def received(node: Node, tag: str) -> dict[str, int]:
    return node.ask("summary", cmd="summary", tag=tag, latencies=False)


def gossip_ready(nodes: list[Node], expected: int, timeout: float = 60) -> None:
    """Each node has ``expected`` peers subscribed to TOPIC and a non-empty mesh."""
    def ready() -> bool:
        for node in nodes:
            view = peers(node)
            if len(view["topic"]) < expected or not view["mesh"]:
                return False
        return True

    wait_until(ready, timeout, "gossip peers on every node")


@pytest.fixture(scope="module")
def star5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    """Five nodes: n1..n4 bootstrap from n0; peer exchange connects them all."""
    with Cluster(tmp_path_factory.mktemp("star5")) as cluster:
        nodes = cluster.star(5, topics=(TOPIC,))
        wait_until(lambda: all(len(peers(n)["connected"]) == 4 for n in nodes), 60,
                   "every node connected to the 4 others")
        gossip_ready(nodes, 4)
        yield nodes


@pytest.fixture(scope="module")
def line3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    """n0 <- n1 <- n2 without peer exchange: n2 hears n0 only through n1."""
    with Cluster(tmp_path_factory.mktemp("line3")) as cluster:
        extra = ("--no-px",)
        n0 = cluster.start("l0", topics=(TOPIC,), extra=extra)
        n1 = cluster.start("l1", topics=(TOPIC,), extra=extra, bootstrap=(n0.addr,))
        n2 = cluster.start("l2", topics=(TOPIC,), extra=extra, bootstrap=(n1.addr,))
        gossip_ready([n0, n2], 1)
        gossip_ready([n1], 2)
        assert n2.peer_id not in peers(n0)["connected"]
        yield [n0, n1, n2]


# --- gossip across five processes ----------------------------------------------------------------
def test_a_message_published_by_one_node_reaches_all_others(star5):
    publisher = star5[2]  # not the bootstrap node
    publisher.ask("published", cmd="publish", topic=TOPIC, count=1, tag="one")
    for node in star5:
        if node is not publisher:
            wait_until(lambda node=node: received(node, "one")["distinct"] == 1, 15,
                       f"{node.name} to receive the message")
    assert received(publisher, "one")["count"] == 0  # not delivered back to its publisher


def test_a_burst_of_500_reaches_every_node_with_none_dropped(star5):
    publisher, others = star5[1], [n for n in star5 if n is not star5[1]]
    began = time.monotonic()
    reply = publisher.ask("published", 300, cmd="publish", topic=TOPIC, count=500, tag="burst",
                          size=200)
    assert reply["min_subscribers"] == 4
    for node in others:
        wait_until(lambda node=node: received(node, "burst")["count"] >= 500, 300,
                   f"{node.name} to receive 500 messages")
    elapsed = time.monotonic() - began
    for node in others:
        summary = node.ask("summary", cmd="summary", tag="burst")
        assert (summary["count"], summary["distinct"]) == (500, 500)  # no drop, no duplicate
    for node in star5:  # and no node's py-libp2p dropped an outbound message RPC
        assert node.ask("stats", cmd="stats")["stats"]["gossip_rpc_drops_messages"] == 0
    latencies = [ns / 1e6 for node in others
                 for ns in node.ask("summary", cmd="summary", tag="burst")["lat_ns"]]
    print(f"\nburst of 500 to 4 nodes: published in {reply['secs']:.1f}s, all delivered in "
          f"{elapsed:.1f}s; delay p50 {percentile(latencies, 50):.0f} ms, "
          f"p99 {percentile(latencies, 99):.0f} ms")


# --- validation across hops ---------------------------------------------------------------------
def test_reject_stops_forwarding_so_two_hops_away_never_sees_it(line3):
    n0, n1, n2 = line3
    rejected = n1.ask("stats", cmd="stats")["stats"]["gossip_rejected"]
    n0.ask("published", cmd="publish", topic=TOPIC, count=1, tag="bad", prefix="R")
    n0.ask("published", cmd="publish", topic=TOPIC, count=1, tag="after-bad")
    wait_until(lambda: received(n2, "after-bad")["count"] == 1, 20, "the marker at n2")
    wait_until(lambda: n1.ask("stats", cmd="stats")["stats"]["gossip_rejected"] == rejected + 1,
               10, "n1 to count the rejection")
    for node in (n1, n2):
        assert received(node, "bad")["count"] == 0
        assert node.count(lambda e: e["ev"] in ("msg", "ignored")
                          and e.get("head", "").startswith("R|bad")) == 0


def test_ignore_is_handed_to_the_ignored_channel_and_not_forwarded(line3):
    n0, n1, n2 = line3
    n0.ask("published", cmd="publish", topic=TOPIC, count=1, tag="later", prefix="I")
    n0.ask("published", cmd="publish", topic=TOPIC, count=1, tag="after-later")
    event = n1.wait(lambda e: e["ev"] == "ignored" and e["head"].startswith("I|later"), 20,
                    what="the ignored message at n1")
    assert event["reason"] == "test payload marked I" and event["origin"] == n0.peer_id
    wait_until(lambda: received(n2, "after-later")["count"] == 1, 20, "the marker at n2")
    assert n2.count(lambda e: e.get("head", "").startswith("I|later")) == 0
    assert received(n1, "later")["count"] == 0  # not delivered as an accepted message


def test_a_relay_forwards_what_it_accepts(line3):
    n0, _n1, n2 = line3
    n2.ask("published", cmd="publish", topic=TOPIC, count=20, tag="back")
    wait_until(lambda: received(n0, "back")["distinct"] == 20, 20, "n2's messages at n0")


# --- request/response between processes --------------------------------------------------------
def test_small_requests_are_fast(star5):
    client, server = star5[1], star5[0]
    reply = client.ask("bench", 120, cmd="req_bench", peer=server.peer_id, protocol=ECHO, n=200,
                       concurrency=1, body={"hello": "world"})
    assert reply["failures"] == [] and len(reply["latencies"]) == 200
    p50 = percentile(reply["latencies"], 50) * 1000
    p99 = percentile(reply["latencies"], 99) * 1000
    print(f"\nsmall request between processes: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p50 < 50


def test_a_16_mib_response_arrives_whole(star5):
    client, server = star5[3], star5[0]
    reply = client.ask("reply", 120, cmd="request", peer=server.peer_id, protocol=BIG,
                       body={"n": 16, "chunk": 1 << 20}, timeout=60)
    assert reply["ok"], reply
    assert reply["blob_bytes"] == 16 << 20
    print(f"\n16 MiB response in {reply['secs']:.2f}s "
          f"({16 * 1.048576 / reply['secs']:.0f} MB/s)")


def test_slow_handlers_serve_concurrent_requests(star5):
    client, server = star5[2], star5[4]
    reply = client.ask("bench", 60, cmd="req_bench", peer=server.peer_id, protocol=SLOW, n=32,
                       concurrency=32, body={"ms": 500}, timeout=20)
    assert reply["failures"] == [] and len(reply["latencies"]) == 32
    assert reply["secs"] < 6  # one at a time would take 16 s


def test_handler_error_comes_back_as_an_error_not_a_hang(star5):
    client, server = star5[4], star5[1]
    reply = client.ask("reply", 30, cmd="request", peer=server.peer_id, protocol=ERROR,
                       body={"msg": "object not found"}, timeout=10)
    assert not reply["ok"] and reply["type"] == "RemoteError"
    assert "RuntimeError: object not found" in reply["error"]
    assert reply["secs"] < 5


def test_a_request_times_out_cleanly_and_the_peer_still_answers(star5):
    client, server = star5[1], star5[3]
    reply = client.ask("reply", 30, cmd="request", peer=server.peer_id, protocol=SLOW,
                       body={"ms": 5000}, timeout=0.5)
    assert not reply["ok"] and reply["type"] == "RequestTimeout"
    assert reply["secs"] < 2.5
    again = client.ask("reply", 30, cmd="request", peer=server.peer_id, protocol=ECHO,
                       body={"x": 1}, timeout=10)
    assert again["ok"] and again["resp"]["echo"] == {"x": 1}


# --- reconnect ------------------------------------------------------------------------------
def test_a_killed_bootstrap_peer_restarted_on_its_port_is_reconnected_and_gossip_flows(
        tmp_path):
    with Cluster(tmp_path) as cluster:
        extra = ("--no-px", "--max-backoff", "1")
        hub = cluster.start("hub", topics=(TOPIC,), extra=extra)
        leaves = [cluster.start(f"leaf{i}", topics=(TOPIC,), extra=extra, bootstrap=(hub.addr,))
                  for i in range(2)]
        gossip_ready([hub], 2)
        gossip_ready(leaves, 1)

        hub.kill()  # SIGKILL: no goodbye on the wire
        for leaf in leaves:
            wait_until(lambda leaf=leaf: hub.peer_id not in peers(leaf)["connected"], 30,
                       f"{leaf.name} to notice the hub is gone")
        port = hub.addr.split("/")[4]
        hub = cluster.restart(hub, listen=f"/ip4/127.0.0.1/tcp/{port}")
        for leaf in leaves:
            wait_until(lambda leaf=leaf: hub.peer_id in peers(leaf)["connected"], 30,
                       f"{leaf.name} to reconnect to the restarted hub")
        gossip_ready([hub], 2)
        gossip_ready(leaves, 1)

        leaves[0].ask("published", cmd="publish", topic=TOPIC, count=5, tag="again")
        for node in (hub, leaves[1]):
            wait_until(lambda node=node: received(node, "again")["distinct"] == 5, 20,
                       f"{node.name} to get gossip after the restart")
