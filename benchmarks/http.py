"""Measure a poi node's HTTP API (node/api) on a 10,000-commit DAG while it ingests attestations.

    nice .venv/bin/python benchmarks/http.py [--seconds 20] [--rate 200] [--ingest-rate 1000]
                                             [--dag-limit 1000] [--out figures.json]

One node process on 127.0.0.1 whose store holds a ``--dag``-commit DAG (``build_dag`` of
benchmarks/gossip.py) with every commit endorsed by every one of ``--validators`` validators (an
``improved`` verdict at 0.9999 and a head vote each, so fork choice accepts the commits and the
canonical chain runs through most of the DAG), put straight into its SQLite store before it
starts. Once its API reports the whole DAG, a publisher process (a libp2p peer of the node, as
in gossip.py's ingest part) sends vote-only attestations for the head at ``--ingest-rate`` per
second, in bundles of ``--bundle``, for the whole run. This process meanwhile sends ``--rate``
requests per second on a fixed timetable (open loop), alternating ``GET /v1/targets/{t}/chain``
(the whole canonical chain) and ``GET /v1/targets/{t}/dag?since=S&limit=L`` (L =
``--dag-limit``, by default the API's default page of 1000; S walks the DAG page by page, as the
live page at ``/`` does), over ``--connections`` persistent HTTP/1.1 connections. The first
``--warmup`` seconds are not counted; then ``--seconds`` are. A request still waiting for a
connection ``--give-up`` seconds after its time is not sent (an error), so a node that cannot
keep up does not make the run last for ever.

Latency is from a request's scheduled send time to the last byte of its response, so it includes
any wait when the node falls behind; service time is from the actual send. Reported per endpoint:
p50/p99/max of both, requests, errors (non-200 answers and failed requests), response size, and
the node's own mean time to the response's start (its /metrics histogram, warm-up included);
overall: the achieved request rate and the attestations per second the node stored during the
measured window (its POI_TRACE_FILE). Goal: p99 latency <= 20 ms on both endpoints.

The figures are printed and written to ``--out``. The machine should be otherwise idle.
"""

from __future__ import annotations

import os
import sys

# The repository in place of this folder at the head of sys.path: run as a script, the
# folder would come first, and this file would shadow the stdlib's http package
# (libp2p's Prometheus exporter, for one, imports http.server).
sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

import argparse
import http.client
import json
import multiprocessing
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from benchmarks.gossip import (
    build_dag,
    fill_store,
    percentile,
    read_trace,
    trace_env,
)
from node.http_client import get_json, request
from node.p2p import quiet_libp2p_logging
from node.topics import pack_bundles, topic
from protocol.cid import CID
from tests.node_support import (
    Feed,
    NodeCluster,
    client,
    init_node_dir,
    make_test_genesis,
    now_ms,
)

GOAL_P99_MS = 20.0
RATIO_PPM = 999_900
"""The verified ratio of every commit: 0.01% faster each, about 2x along the canonical chain's
~7,100 steps (a plausible history; Feed.endorse's 0.95 would make it 10^158x)."""
LOADED_TIMEOUT_S = 600
ENDPOINTS = ("chain", "dag")
NOT_SENT = "not sent: too far behind"
ROUTES = {"chain": "/v1/targets/{target}/chain", "dag": "/v1/targets/{target}/dag"}


# -- HTTP -----------------------------------------------------------------------------------------

def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def wait_loaded(base: str, target: str, commits: int, timeout: float) -> dict[str, Any]:
    """The target's info once the API answers and counts every commit of the DAG."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = get_json(f"{base}/v1/targets/{target}")
            if info["commit_count"] >= commits:
                return info
        except OSError:
            info = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API did not report {commits} commits within {timeout}s "
                               f"(last answer {info})")
        time.sleep(0.1)


def server_latency(text: str) -> dict[str, tuple[float, int]]:
    """(seconds summed, requests) per route of the node's HTTP histogram, answers 200 only."""
    out: dict[str, tuple[float, int]] = {}
    pattern = re.compile(r"^poi_http_request_duration_seconds_(sum|count)\{(.*)\} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match or 'method="GET"' not in match[2] or 'status="200"' not in match[2]:
            continue
        route = re.search(r'route="([^"]*)"', match[2])[1]
        total, count = out.get(route, (0.0, 0))
        value = float(match[3])
        out[route] = (total + value, count) if match[1] == "sum" else (total, count + int(value))
    return out


# -- the publisher (a process of its own, so that it shares no GIL with the load) -----------------

def publish_votes(addr: str, peer_id: str, target: str, bundles: list[bytes], interval_s: float,
                  started: Any, stop: Any, sent: Any) -> None:
    """One bundle every ``interval_s`` on a fixed timetable until they run out or ``stop``."""
    quiet_libp2p_logging()

    target_cid = CID.parse(target)

    async def run() -> None:
        async with client("bench-attester", addr) as peer:
            await peer.wait_topic(topic(target_cid, "attestations"), peer_id, 60)
            started.set()
            t0 = trio.current_time()
            for i, bundle in enumerate(bundles):
                if stop.is_set():
                    break
                await trio.sleep_until(t0 + i * interval_s)
                await peer.publish_raw(target_cid, "attestations", bundle)
                sent.value = i + 1
            while not stop.is_set():  # keep the connection until the load is over
                await trio.sleep(0.1)

    trio.run(run)


# -- the load -------------------------------------------------------------------------------------

class Load:
    """``rate`` requests per second on a fixed timetable, taken in order by ``connections``
    threads with a persistent connection each; a request waits for a free connection. One that
    is more than ``give_up_s`` behind its time when a connection frees up is not sent (it counts
    as an error, NOT_SENT), so a node that cannot keep up does not make the run last forever."""

    def __init__(self, base: str, paths: list[tuple[str, str]], rate: float, count: int,
                 connections: int, give_up_s: float) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.paths = paths
        self.rate = rate
        self.count = count
        self.connections = connections
        self.give_up_s = give_up_s
        self.next = 0
        self.lock = threading.Lock()
        self.results: list[tuple[str, float, float, float, int | str, int] | None] = (
            [None] * count)
        self.t0 = 0.0  # set once every connection is open (the barrier's action)

    def start_clock(self) -> None:
        self.t0 = time.perf_counter() + 0.05

    def take(self) -> int:
        with self.lock:
            k = self.next
            self.next += 1
            return k

    def worker(self, ready: threading.Barrier) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.connect()
        ready.wait()
        try:
            while (k := self.take()) < self.count:
                kind, path = self.paths[k % len(self.paths)]
                scheduled = self.t0 + k / self.rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif -delay > self.give_up_s:
                    self.results[k] = (kind, scheduled, scheduled, scheduled, NOT_SENT, 0)
                    continue
                sent = time.perf_counter()
                try:
                    status, body = get(conn, path)
                    size = len(body)
                except (OSError, http.client.HTTPException) as exc:
                    status, size = type(exc).__name__, 0
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.results[k] = (kind, scheduled, sent, time.perf_counter(), status, size)
        finally:
            conn.close()

    def run(self) -> None:
        ready = threading.Barrier(self.connections, action=self.start_clock, timeout=30)
        threads = [threading.Thread(target=self.worker, args=(ready,), daemon=True)
                   for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def summarize(results: list[tuple], window: tuple[float, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ENDPOINTS:
        rows = [r for r in results if r is not None and r[0] == kind]
        ok = [r for r in rows if r[4] == 200]
        latency = [(r[3] - r[1]) * 1000 for r in ok]
        service = [(r[3] - r[2]) * 1000 for r in ok]
        errors: dict[str, int] = {}
        for r in rows:
            if r[4] != 200:
                errors[str(r[4])] = errors.get(str(r[4]), 0) + 1
        out[kind] = {
            "requests": len(rows), "errors": sum(errors.values()), "error_kinds": errors,
            "latency_ms_p50": round(percentile(latency, 50), 2),
            "latency_ms_p99": round(percentile(latency, 99), 2),
            "latency_ms_max": round(max(latency), 2) if latency else None,
            "service_ms_p50": round(percentile(service, 50), 2),
            "service_ms_p99": round(percentile(service, 99), 2),
            "late_sends_over_1ms": sum(1 for r in rows if r[2] - r[1] > 0.001),
            "response_bytes_mean": round(sum(r[5] for r in ok) / len(ok)) if ok else 0,
        }
    ok = [r for r in results if r is not None and r[4] == 200]
    last = max((r[3] for r in ok), default=window[1])
    out["requests"] = sum(1 for r in results if r is not None)
    out["achieved_rate_per_s"] = round(len(ok) / (max(last, window[1]) - window[0]), 1)
    return out


# -- the benchmark --------------------------------------------------------------------------------

def bench(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    genesis = make_test_genesis(root, epoch_seconds=3600, validators=args.validators)
    target = str(genesis.target.cid)
    feed = Feed(genesis)
    started = time.perf_counter()
    commits = build_dag(genesis, args.dag)
    endorsements = [att for commit in commits
                    for att in feed.endorse(commit, ratio_ppm=RATIO_PPM, half_width_ppm=50)]
    print(f"  built a {len(commits)}-commit DAG with {len(endorsements)} endorsements in "
          f"{time.perf_counter() - started:.1f}s", flush=True)
    ctx = multiprocessing.get_context("spawn")
    pub_started, stop, sent = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    with NodeCluster(root, genesis) as cluster:
        init_node_dir(root / "api", "api", genesis_file=cluster.bundle, http=True)
        node = cluster.add("api", env=trace_env(root, "api"), start=False)
        fill_store(node.store_path, [*genesis.objects(), *commits, *endorsements])
        node.start()
        loaded = time.monotonic()
        base = node.wait_ready(timeout=LOADED_TIMEOUT_S)["http_url"]
        info = wait_loaded(base, target, len(commits), LOADED_TIMEOUT_S)
        load_s = time.monotonic() - loaded
        chain = get_json(f"{base}/v1/targets/{target}/chain", timeout=60)
        page = get_json(f"{base}/v1/targets/{target}/dag?limit={args.dag_limit}", timeout=60)
        print(f"  node up in {load_s:.1f}s at {base}: {info['commit_count']} commits, canonical "
              f"chain {len(chain['steps'])} steps, DAG page {len(page['nodes'])} of "
              f"{page['total']}", flush=True)

        seconds = args.warmup + args.seconds
        per_validator = -(-int(args.ingest_rate * (seconds + 10)) // args.validators)
        votes = feed.votes(CID.parse(info["head"]), per_validator)
        bundles = pack_bundles([a.encode() for a in votes], max_bytes=1 << 20,
                               max_objects=args.bundle)
        publisher = ctx.Process(target=publish_votes, daemon=True, args=(
            node.addr, node.peer_id, target, bundles, args.bundle / args.ingest_rate,
            pub_started, stop, sent))
        try:
            publisher.start()
            if not pub_started.wait(60):
                raise TimeoutError("the publisher did not join the node's attestation topic")
            chain_path = f"/v1/targets/{target}/chain"
            dag_paths = [f"/v1/targets/{target}/dag?since={since}&limit={args.dag_limit}"
                         for since in range(0, len(commits), args.dag_limit)]
            paths = [pair for dag_path in dag_paths
                     for pair in (("chain", chain_path), ("dag", dag_path))]
            before = server_latency(request(f"{base}/metrics").decode())
            load = Load(base, paths, args.rate, round(args.rate * seconds), args.connections,
                        args.give_up)
            wall = time.time_ns() - time.perf_counter_ns()
            print(f"  load: {args.rate:g} requests/s for {args.warmup:g}s warm-up + "
                  f"{args.seconds:g}s; ingest {args.ingest_rate:g} attestations/s", flush=True)
            load.run()
            after = server_latency(request(f"{base}/metrics").decode())
        finally:
            stop.set()
            if publisher.is_alive():
                publisher.join(10)
            if publisher.is_alive():
                publisher.terminate()
                publisher.join(5)
        skip = round(args.rate * args.warmup)
        window = (load.t0 + args.warmup, load.t0 + seconds)
        figures = summarize(load.results[skip:], window)
        w0, w1 = (wall + int(t * 1e9) for t in window)
        stored = sum(e["v"] for e in read_trace(root / "api.trace")
                     if e["ev"] == "admitted" and w0 <= e["t"] < w1)
        stats = node.stats()
    for kind in ENDPOINTS:
        total, count = after.get(ROUTES[kind], (0.0, 0))
        total0, count0 = before.get(ROUTES[kind], (0.0, 0))
        n = count - count0
        figures[kind]["server_mean_ms"] = round((total - total0) / n * 1000, 2) if n else None
    return {
        **figures,
        "dag_commits": len(commits), "validators": args.validators,
        "endorsements": len(endorsements), "node_load_s": round(load_s, 1),
        "canonical_steps": len(chain["steps"]), "dag_limit": args.dag_limit,
        "dag_pages": len(dag_paths), "rate_per_s": args.rate, "seconds": args.seconds,
        "warmup_s": args.warmup, "connections": args.connections,
        "ingest_rate_offered_per_s": args.ingest_rate, "bundle": args.bundle,
        "ingest_stored_per_s": round(stored / args.seconds),
        "bundles_published": sent.value,
        "gossip_rejected": stats.get("ingest_gossip_reject_total", 0),
        "gossip_ignored": stats.get("ingest_gossip_ignore_total", 0),
    }


def report(figures: dict[str, Any]) -> None:
    print(f"  {'endpoint':8} {'requests':>8} {'errors':>6}   latency ms p50 / p99 / max   "
          f"service ms p50 / p99   server mean ms   bytes")
    for kind in ENDPOINTS:
        f = figures[kind]
        print(f"  {kind:8} {f['requests']:8} {f['errors']:6}   {f['latency_ms_p50']:8.2f} / "
              f"{f['latency_ms_p99']:6.2f} / {f['latency_ms_max'] or 0:6.1f}   "
              f"{f['service_ms_p50']:8.2f} / {f['service_ms_p99']:6.2f}   "
              f"{f['server_mean_ms'] or 0:14.2f}   {f['response_bytes_mean']}")
    print(f"  achieved {figures['achieved_rate_per_s']} answers/s; node stored "
          f"{figures['ingest_stored_per_s']} attestations/s during the window "
          f"({figures['ingest_rate_offered_per_s']:g}/s offered)")
    for kind in ENDPOINTS:
        p99 = figures[kind]["latency_ms_p99"]
        met = p99 <= GOAL_P99_MS and figures[kind]["errors"] == 0
        print(f"  goal p99 <= {GOAL_P99_MS:g} ms, {kind}: {p99:.2f} ms "
              f"{'PASS' if met else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dag", type=int, default=10_000)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200, help="Requests per second, in all.")
    parser.add_argument("--seconds", type=float, default=20, help="The measured window.")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--give-up", type=float, default=5,
                        help="Do not send a request this many seconds behind its time.")
    parser.add_argument("--dag-limit", type=int, default=1000,
                        help="Commits per /dag page (the API's default page is 1000).")
    parser.add_argument("--ingest-rate", type=float, default=1000,
                        help="Attestations per second offered to the node.")
    parser.add_argument("--bundle", type=int, default=50, help="Attestations per gossip bundle.")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path,
                        help="Keep the node's directory (logs) here (a new directory).")
    args = parser.parse_args()
    quiet_libp2p_logging()
    with tempfile.TemporaryDirectory(prefix="poi-bench-http-") as tmp:
        root = Path(tmp)
        if args.keep:
            root = args.keep
            root.mkdir(parents=True, exist_ok=True)
        print("http:", flush=True)
        started = time.monotonic()
        figures = {"started": now_ms(), **bench(root, args)}
        figures["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=1), flush=True)
    report(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
