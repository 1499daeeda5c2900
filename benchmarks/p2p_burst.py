"""Measure the p2p layer between real processes on 127.0.0.1.

    nice .venv/bin/python benchmarks/p2p_burst.py --nodes 5,10 [--out figures.json]

For each network size: a star of runner processes (tests/p2p_support/runner.py; n1.. bootstrap
from n0, peer exchange meshes them), then from one publisher (n1):

* latency: ``--latency-msgs`` messages at ``--latency-rate`` per second; delay to each node and
  to the last node (per message, the slowest receiver), p50/p99;
* burst: ``--burst`` messages as fast as ``publish`` accepts them; time until every node has all
  of them, delay p50/p99, and drops (a node with fewer distinct messages than sent);
* CPU: user+system seconds per message on the publisher and on the other nodes during the burst.

Once (on the first size): request/response from n1 to n0: sequential small-request latency,
16 MiB responses, and 32 concurrent 100 ms requests. Results go to stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The repository in place of this folder at the head of sys.path: run as a script, the
# folder would come first, and benchmarks/http.py would shadow the stdlib's http package
# (libp2p's Prometheus exporter, for one, imports http.server).
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.p2p_support.cluster import Cluster, Node, percentile, wait_until

TOPIC = "poi/bench/1"


def view(node: Node) -> dict[str, Any]:
    return node.ask("peers", 60, cmd="peers", topic=TOPIC)


def summary(node: Node, tag: str, by_seq: bool = False) -> dict[str, Any]:
    return node.ask("summary", 60, cmd="summary", tag=tag, by_seq=by_seq)


def cpu(node: Node) -> float:
    return node.ask("stats", 60, cmd="stats")["cpu_s"]


def start_network(cluster: Cluster, size: int) -> list[Node]:
    nodes = cluster.star(size, topics=(TOPIC,), extra=("--quiet-messages",))
    want = min(size - 1, 8)
    wait_until(lambda: all(len(view(n)["peers"]) >= want for n in nodes), 120, "connections")
    wait_until(lambda: all(len(view(n)["topic_peers"]) >= want and view(n)["mesh"]
                           for n in nodes), 120, "gossip mesh")
    return nodes


def gossip_figures(nodes: list[Node], args: argparse.Namespace) -> dict[str, Any]:
    publisher, receivers = nodes[1], [n for n in nodes if n is not nodes[1]]
    out: dict[str, Any] = {"nodes": len(nodes)}

    # --- latency at a modest rate ---
    count = args.latency_msgs
    publisher.ask("published", 600, cmd="publish", topic=TOPIC, count=count, tag="lat",
                  size=args.size, rate=args.latency_rate)
    wait_until(lambda: all(summary(n, "lat")["distinct"] >= count for n in receivers), 120,
               "latency messages")
    per_node, slowest = [], {}
    for node in receivers:
        for seq, ns in summary(node, "lat", by_seq=True)["seq_lat_ns"]:
            per_node.append(ns / 1e6)
            slowest[seq] = max(slowest.get(seq, 0.0), ns / 1e6)
    out["latency_rate_per_s"] = args.latency_rate
    out["delay_to_each_ms"] = _quantiles(per_node)
    out["delay_to_all_ms"] = _quantiles(list(slowest.values()))

    # --- burst ---
    count = args.burst
    cpu_before = [cpu(n) for n in nodes]
    began = time.monotonic()
    reply = publisher.ask("published", 900, cmd="publish", topic=TOPIC, count=count,
                          tag="burst", size=args.size)
    with contextlib.suppress(TimeoutError):  # a shortfall is reported as drops below
        wait_until(lambda: all(summary(n, "burst")["count"] >= count for n in receivers),
                   args.burst_timeout, "the burst")
    elapsed = time.monotonic() - began
    cpu_after = [cpu(n) for n in nodes]
    got = [summary(n, "burst") for n in receivers]
    stats = [n.ask("stats", 60, cmd="stats") for n in nodes]
    delays = [ns / 1e6 for s in got for ns in s["lat_ns"]]
    spent = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    out["burst"] = {
        "messages": count,
        "size_bytes": args.size,
        "publish_s": round(reply["secs"], 2),
        "all_delivered_s": round(elapsed, 2),
        "messages_per_s_to_all": round(count / elapsed, 1),
        "dropped": {n.name: count - s["distinct"] for n, s in zip(receivers, got, strict=True)
                    if s["distinct"] < count},
        "delay_ms": _quantiles(delays),
        "cpu_ms_per_msg_publisher": round(spent[1] / count * 1000, 2),
        "cpu_ms_per_msg_other_nodes_mean": round(
            statistics.mean(spent[:1] + spent[2:]) / count * 1000, 2),
        "cpu_ms_per_msg_all_nodes_sum": round(sum(spent) / count * 1000, 2),
        "rpc_drops_all_nodes": sum(s["stats"]["gossip_rpc_drops_messages"] for s in stats),
        "max_rss_mb": max(s["max_rss_mb"] for s in stats),
    }
    return out


def request_figures(client: Node, server: Node) -> dict[str, Any]:
    echo = client.ask("bench", 300, cmd="req_bench", peer=server.peer_id,
                      protocol="/poi/test/echo/1", n=300, concurrency=1, body={"x": "y"})
    big = []
    for _ in range(3):
        reply = client.ask("reply", 300, cmd="request", peer=server.peer_id,
                           protocol="/poi/test/big/1", body={"n": 16, "chunk": 1 << 20},
                           timeout=120)
        assert reply["ok"] and reply["blob_bytes"] == 16 << 20, reply
        big.append(reply["secs"])
    slow = client.ask("bench", 300, cmd="req_bench", peer=server.peer_id,
                      protocol="/poi/test/slow/1", n=32, concurrency=32, body={"ms": 100},
                      timeout=30)
    return {
        "small_request_ms": _quantiles([s * 1000 for s in echo["latencies"]]),
        "small_request_failures": len(echo["failures"]),
        "response_16MiB_s": [round(s, 3) for s in big],
        "response_16MiB_MB_per_s": round((16 << 20) / 1e6 / statistics.median(big), 1),
        "concurrent_32x100ms_s": round(slow["secs"], 2),
        "concurrent_failures": len(slow["failures"]),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2),
            "max": round(max(values, default=float("nan")), 2), "n": len(values)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="5", help="comma-separated network sizes")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--burst-timeout", type=float, default=600)
    parser.add_argument("--size", type=int, default=200, help="gossip payload bytes")
    parser.add_argument("--latency-msgs", type=int, default=100)
    parser.add_argument("--latency-rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--no-requests", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(),
                               "gossip": []}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as logs:
        for index, size in enumerate(int(s) for s in args.nodes.split(",")):
            with Cluster(Path(logs) / f"n{size}") as cluster:
                began = time.monotonic()
                nodes = start_network(cluster, size)
                print(f"[{size} nodes up and meshed in {time.monotonic() - began:.1f}s]",
                      flush=True)
                figures = gossip_figures(nodes, args)
                print(json.dumps(figures, indent=1), flush=True)
                results["gossip"].append(figures)
                if index == 0 and not args.no_requests:
                    results["requests"] = request_figures(nodes[1], nodes[0])
                    print(json.dumps(results["requests"], indent=1), flush=True)
    results["load_avg_at_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
