"""Measure poi nodes (node/runtime.py) as real processes on 127.0.0.1.

    nice .venv/bin/python benchmarks/gossip.py [--nodes 20] [--parts propagation,ingest,sync]
                                               [--out figures.json]

* **propagation**: ``--nodes`` node processes (n1.. bootstrap from n0, peer exchange meshes them)
  and a publisher in this process (a libp2p peer of the network); ``--commits`` commits, each
  with its tree and blob, one every ``--interval-ms``. Every node appends a line per stored
  commit to a trace file (POI_TRACE_FILE); delay = stored at the node - published, wall clock.
  Reported: p50/p99 over (commit, node), and p50/p99 of the time for a commit to reach *all*.
  Goal: p99 to reach all <= 250 ms.
* **ingest**: one node, a publisher sending ``--attestations`` signed attestations (by
  ``--validators`` staked verifiers) in bundles of ``--bundle``, as fast as it can. Ingest rate =
  attestations / (last stored - first published). The Ed25519 bound is measured in this process
  in the same run: verifications per second of the same attestations' signatures on one thread
  (and on two). Goal: ingest >= 0.8 x the one-thread bound.
* **sync**: a node whose store holds a ``--dag``-commit DAG (built here, put straight into its
  SQLite store), then a late joiner that knows only the target's CID and bootstraps from it.
  Reported: time from starting the joiner process until it holds every commit with the same
  head, and from its "ready" to the same. Goal: <= 30 s.

The figures are printed and written to ``--out``. The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# The repository in place of this folder at the head of sys.path: run as a script, the
# folder would come first, and benchmarks/http.py would shadow the stdlib's http package
# (libp2p's Prometheus exporter, for one, imports http.server).
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from dag.store import Store
from node.bundle import encode_bundle
from node.p2p import P2PConfig, open_p2p, quiet_libp2p_logging
from node.topics import pack_bundles, topic
from protocol.keys import verify
from protocol.objects import Attestation, Blob, Claim, Commit, Tree, TreeEntry
from tests.node_support import (
    Feed,
    NodeCluster,
    client,
    key_for,
    make_test_genesis,
    now_ms,
    wait_all,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def read_trace(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def trace_env(root: Path, name: str) -> dict[str, str]:
    return {"POI_TRACE_FILE": str(root / f"{name}.trace")}


# -- propagation ----------------------------------------------------------------------------------

def propagation(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    genesis = make_test_genesis(root, epoch_seconds=60)
    feed = Feed(genesis)
    with NodeCluster(root, genesis) as cluster:
        started = time.monotonic()
        first = cluster.add("n0", env=trace_env(root, "n0"))
        others = [cluster.add(f"n{i}", bootstrap=(first.addr,), env=trace_env(root, f"n{i}"))
                  for i in range(1, args.nodes)]
        nodes = [first, *others]
        want = min(args.nodes - 1, 6)
        wait_all(nodes, lambda d: len(d.get("peers", [])) >= want and all(
            n >= 1 for k, n in d.get("mesh", {}).items() if k.endswith("/commits")),
            300, "connected and meshed")
        ready_s = time.monotonic() - started
        print(f"  {args.nodes} nodes up and meshed in {ready_s:.1f}s", flush=True)
        objects = []
        parent = None
        for _ in range(args.commits):
            commit, tree, blob = feed.commit(parent)
            objects.append((commit, tree, blob))
            parent = commit.cid
        published: dict[str, int] = {}

        async def publish() -> None:
            config = P2PConfig(key=key_for("bench-publisher"), bootstrap=(first.addr,))
            async with open_p2p(config) as p2p:
                name = topic(genesis.target.cid, "commits")
                with trio.fail_after(60):
                    while len(p2p.mesh_peers(name)) < 1 and len(p2p.topic_peers(name)) < want:
                        await trio.sleep(0.1)
                await trio.sleep(2)  # let its mesh settle (heartbeats), as a live peer's has
                for commit, tree, blob in objects:
                    published[str(commit.cid)] = time.time_ns()
                    await p2p.publish(name, encode_bundle([commit.encode(), tree.encode(),
                                                           blob.data]))
                    await trio.sleep(args.interval_ms / 1000)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if all(len(commits_seen(root, n.name)) >= len(objects) for n in nodes):
                        break
                    await trio.sleep(0.2)

        trio.run(publish)
        delays: list[float] = []
        to_all: list[float] = []
        missing = 0
        seen = {n.name: commits_seen(root, n.name) for n in nodes}
        for cid, sent in published.items():
            arrivals = [seen[n.name].get(cid) for n in nodes]
            missing += sum(1 for a in arrivals if a is None)
            got = [(a - sent) / 1e6 for a in arrivals if a is not None]
            delays.extend(got)
            if len(got) == len(nodes):
                to_all.append(max(got))
        per_node = {n.name: round(percentile([(seen[n.name][c] - t) / 1e6
                                              for c, t in published.items()
                                              if c in seen[n.name]], 50), 1) for n in nodes}
        return {
            "per_node_delay_ms_p50": per_node,
            "reach_all_ms_in_order": [round(x) for x in to_all],
            "nodes": args.nodes, "commits": len(published), "interval_ms": args.interval_ms,
            "startup_s": round(ready_s, 1), "missing_deliveries": missing,
            "delay_ms_p50": round(percentile(delays, 50), 1),
            "delay_ms_p99": round(percentile(delays, 99), 1),
            "reach_all_ms_p50": round(percentile(to_all, 50), 1),
            "reach_all_ms_p99": round(percentile(to_all, 99), 1),
            "reach_all_ms_max": round(max(to_all), 1) if to_all else None,
        }


def commits_seen(root: Path, name: str) -> dict[str, int]:
    return {e["v"]: e["t"] for e in read_trace(root / f"{name}.trace") if e["ev"] == "commit"}


# -- ingest ---------------------------------------------------------------------------------------

def ed25519_bound(atts: list[Attestation], threads: int) -> float:
    """Signature verifications per second (the signing payload precomputed)."""
    work = [(a.verifier, a.TYPE, a.signing_payload(), a.sig) for a in atts]
    chunks = [work[i::threads] for i in range(threads)]

    def run(chunk: list[tuple]) -> None:
        for args in chunk:
            verify(*args)

    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        pool = [threading.Thread(target=run, args=(c,)) for c in chunks]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        best = max(best, len(work) / (time.perf_counter() - started))
    return best


def ingest(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    genesis = make_test_genesis(root, epoch_seconds=3600, validators=args.validators)
    feed = Feed(genesis)
    started = time.perf_counter()
    per = args.attestations // args.validators
    atts = feed.votes(genesis.target.cid, per)
    sign_s = time.perf_counter() - started
    # Each bundle carries consecutive rounds (every validator once per round), as a relay of
    # many verifiers' attestations would.
    bundles = pack_bundles([a.encode() for a in atts], max_bytes=1 << 20,
                           max_objects=args.bundle)
    bound_1 = ed25519_bound(atts[:3000], 1)
    bound_2 = ed25519_bound(atts[:3000], 2)
    print(f"  signed {len(atts)} attestations in {sign_s:.1f}s; Ed25519 verify bound "
          f"{bound_1:.0f}/s (1 thread), {bound_2:.0f}/s (2 threads)", flush=True)
    with NodeCluster(root, genesis) as cluster:
        node = cluster.add("ingest", env=trace_env(root, "ingest"))
        node.wait_ready()
        first_sent: list[int] = []

        async def publish() -> None:
            async with client("bench-attester", node.addr) as peer:
                await peer.wait_topic(topic(genesis.target.cid, "attestations"), node.peer_id,
                                      60)
                first_sent.append(time.time_ns())
                for bundle in bundles:
                    await peer.publish_raw(genesis.target.cid, "attestations", bundle)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and stored(root) < len(atts):
                    await trio.sleep(0.1)

        trio.run(publish)
        events = [e for e in read_trace(root / "ingest.trace") if e["ev"] == "admitted"]
        total = sum(e["v"] for e in events)
        last = max(e["t"] for e in events) if events else first_sent[0]
        elapsed = (last - first_sent[0]) / 1e9
        stats = node.stats()
    rate = total / elapsed if elapsed > 0 else 0.0
    return {
        "attestations": len(atts), "stored": total, "bundles": len(bundles),
        "bundle_objects": args.bundle, "validators": args.validators,
        "seconds": round(elapsed, 2), "ingest_per_s": round(rate),
        "ed25519_bound_per_s_1_thread": round(bound_1),
        "ed25519_bound_per_s_2_threads": round(bound_2),
        "ratio_to_1_thread_bound": round(rate / bound_1, 2),
        "ratio_to_2_thread_bound": round(rate / bound_2, 2),
        "gossip_rejected": stats.get("ingest_gossip_reject_total", 0),
        "gossip_ignored": stats.get("ingest_gossip_ignore_total", 0),
        "rpc_drops": stats.get("gossip_rpc_drops_messages", 0),
    }


def stored(root: Path) -> int:
    return sum(e["v"] for e in read_trace(root / "ingest.trace") if e["ev"] == "admitted")


# -- sync -----------------------------------------------------------------------------------------

def build_dag(genesis: Any, count: int, seed: int = 7) -> list[Commit]:
    """``count`` commits: mostly a chain, every few commits a fork off a recent one."""
    rng = random.Random(seed)
    author = key_for("bench-author")
    blob = Blob(b"pub fn f() {}\n")
    tree = Tree({"src/lib.rs": TreeEntry(blob.cid, 0o644)})
    claim = Claim(profile="generic", ratio_ppm=990_000, lo_ppm=980_000, hi_ppm=999_000,
                  pairs=7)
    commits: list[Commit] = []
    base = genesis.target.genesis_time_ms
    for i in range(count):
        recent = commits[-5:]
        parent = rng.choice(recent).cid if recent and rng.random() < 0.2 else (
            commits[-1].cid if commits else genesis.target.cid)
        commits.append(Commit.create(author, target=genesis.target.cid, parents=[parent],
                                     tree=tree.cid, claim=claim, time_ms=base + i,
                                     message=f"commit {i}"))
    return commits


def fill_store(path: Path, objects: list[Any]) -> None:
    """Put ``objects`` (each after what it depends on) straight into a node's SQLite store,
    1000 per transaction; the node must not be running."""
    store = Store(path)
    try:
        for i in range(0, len(objects), 1000):
            store.put_many(objects[i:i + 1000])
    finally:
        store.close()


def sync(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    genesis = make_test_genesis(root, epoch_seconds=3600)
    started = time.perf_counter()
    commits = build_dag(genesis, args.dag)
    print(f"  built a {len(commits)}-commit DAG in {time.perf_counter() - started:.1f}s",
          flush=True)
    with NodeCluster(root, genesis) as cluster:
        source = cluster.add("source", start=False)
        fill_store(source.store_path, [*genesis.objects(), *commits])
        source.start()
        loaded = time.monotonic()
        source.wait_ready(timeout=300)
        load_s = time.monotonic() - loaded
        head = source.chain(genesis.target.cid)["head"]
        joiner = cluster.add("joiner", bootstrap=(source.addr,), with_genesis=False,
                             start=False)
        t0 = time.monotonic()
        joiner.start()
        ready = joiner.wait_ready(timeout=120)
        t_ready = time.monotonic()
        done = joiner.wait(lambda d: d.get("chains", {}).get(str(genesis.target.cid), {})
                           .get("commits") == len(commits)
                           and d["chains"][str(genesis.target.cid)]["head"] == head,
                           600, "the whole DAG")
        t_done = time.monotonic()
        stats = done["stats"]
    return {
        "commits": len(commits), "source_load_s": round(load_s, 2),
        "joiner_start_to_synced_s": round(t_done - t0, 2),
        "joiner_ready_to_synced_s": round(t_done - t_ready, 2),
        "joiner_start_to_ready_s": round(t_ready - t0, 2),
        "sync_requests": stats.get("sync_requests_total"),
        "objects_fetched": stats.get("sync_objects_fetched_total"),
        "same_head": done["chains"][str(genesis.target.cid)]["head"] == head,
        "ready_pid": ready["pid"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--attestations", type=int, default=12_000)
    parser.add_argument("--validators", type=int, default=48)
    parser.add_argument("--bundle", type=int, default=480)
    parser.add_argument("--dag", type=int, default=10_000)
    parser.add_argument("--parts", default="propagation,ingest,sync")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="Keep the nodes' directories (logs) here.")
    args = parser.parse_args()
    quiet_libp2p_logging()
    figures: dict[str, Any] = {"started": now_ms()}
    parts = {"propagation": propagation, "ingest": ingest, "sync": sync}
    for part in args.parts.split(","):
        with tempfile.TemporaryDirectory(prefix=f"poi-bench-{part}-") as tmp:
            root = Path(tmp)
            if args.keep:
                root = args.keep / part
                root.mkdir(parents=True, exist_ok=True)
            print(f"{part}:", flush=True)
            started = time.monotonic()
            figures[part] = parts[part](root, args)
            figures[part]["wall_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(figures[part], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
