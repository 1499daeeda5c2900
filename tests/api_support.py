"""A small real node for the HTTP API tests, and a real Hypercorn server to run it in.

`StandInNode` has the attributes and methods of the Node object that node/api reads (see the
shared contract): a real SQLite `Store`, real `TargetChain`s with their listeners connected to a
real `EventHub`, and a `submit_objects` that decodes, checks signatures, stores and applies each
object. It has no network: no peers, no gossip. `build_scenario` fills it with a small but
complete history made from protocol.examples-style keys: two accepted steps (one final), a
rejected commit, a pending one, and an equivocating verifier with evidence against it.

`ApiServer` runs `serve_api` in a thread with its own trio loop, on 127.0.0.1 and a free port,
and stops it on exit; tests talk to it over TCP with httpx (or a browser).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from dag.store import Store
from node.bundle import encode_bundle
from node.chain import TargetChain
from node.config import Config
from node.events import EventHub
from protocol import examples as ex
from protocol.cid import CID
from protocol.errors import ProtocolError
from protocol.keys import SigningKey
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commands,
    Commit,
    Evidence,
    Ruling,
    SignedObject,
    StakeTx,
    Target,
    Tree,
    TreeEntry,
    Validator,
    Verdict,
    decode_object,
)

GENESIS_MS = ex.GENESIS_TIME_MS
NOW_MS = GENESIS_MS + 10 * 60_000
"""The stand-in's clock: ten epochs after genesis (fixed, so every run is the same)."""
BASE_FILES = {
    "Cargo.toml": "[workspace]\nmembers = [\"dft\", \"baby-bear\", \"gate\"]\n",
    "baby-bear/src/lib.rs": "pub fn reduce(x: u64) -> u32 {\n    (x % 2013265921) as u32\n}\n",
    "dft/src/lib.rs": "pub fn dft(v: &mut [u32]) {\n    naive(v);\n}\n",
    "gate/src/main.rs": "fn main() {}\n",
}
STAKES = {0: 100, 1: 200, 2: 300, 3: 400, 4: 50}
"""Validator key index → genesis stake; key 4 is the Byzantine verifier."""
HONEST = (0, 1, 2, 3)
BYZANTINE = 4


@dataclass
class SubmitResult:
    """The shape of node/ingest.py's SubmitResult."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)


def make_target() -> tuple[Target, Tree, list[Blob]]:
    blobs = [Blob(text.encode()) for text in BASE_FILES.values()]
    base = Tree({path: TreeEntry(Blob(text.encode()).cid) for path, text in BASE_FILES.items()})
    target = Target(
        name="api-test-ntt", description="The stand-in target of the HTTP API tests.",
        base_tree=base.cid, writable=("baby-bear/src/**", "dft/src/**"), metric="lde_ns",
        profile="avx2",
        commands=Commands(build=("cargo", "build", "--release"),
                          gate=("target/release/gate", "--seed", "{seed}"),
                          bench=("target/release/bench", "--seed", "{seed}")),
        validators=tuple(sorted((Validator(ex.key(i).public_key, s) for i, s in STAKES.items()),
                                key=lambda v: v.key)),
        genesis_time_ms=GENESIS_MS, epoch_seconds=60,
    )
    return target, base, blobs


class StandInNode:
    """The parts of node/runtime.py's Node that the API reads, with a real store and chains."""

    def __init__(self, data_dir: Path, targets: list[tuple[Target, Tree, list[Blob]]],
                 *, now_ms: int = NOW_MS) -> None:
        self.data_dir = data_dir
        self.config = Config()
        self.key = ex.key(9)
        self.peer_id = self.key.peer_id
        self.roles = ["observer"]
        self.store = Store(data_dir / "store.db")
        self.events = EventHub()
        self.chains: dict[CID, TargetChain] = {}
        self.proposer: Any = None
        self.http_url: str | None = None
        self.counters = {"ingest_accepted_total": 0, "ingest_rejected_total": 0,
                         "ingest_ignored_total": 0, "gossip_received_total": 0}
        self._started = time.monotonic()
        for target, base, blobs in targets:
            self.store.put_many([target, base, *blobs])
            chain = TargetChain(self.store, target)
            chain.tick(now_ms)
            chain.listeners.append(self.events.publish)
            self.chains[target.cid] = chain

    # -- what the API reads -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id, "public_key": self.key.public_key.hex(),
            "roles": list(self.roles), "listen_addrs": [], "peers": [], "synced": True,
            "queue_length": 0, "verifying": None, "targets": [str(c) for c in self.chains],
            "pending_objects": self.store.pending_count(),
            "uptime_s": time.monotonic() - self._started, "http_url": self.http_url,
            "version": "0.1.0",
        }

    def stats(self) -> dict[str, int | float]:
        return {**self.counters, "peers_connected": 0, "verify_queue_length": 0}

    async def submit_objects(self, objects: list[bytes]) -> SubmitResult:
        return self.ingest_bytes(objects)

    # -- ingest -----------------------------------------------------------------------------
    def ingest_bytes(self, datas: list[bytes]) -> SubmitResult:
        """Decode, check signatures, store and apply each object; blobs are raw bytes that a
        tree in the same bundle names."""
        result = SubmitResult()
        decoded: list[tuple[int, Any]] = []
        raw: list[tuple[int, bytes, str]] = []
        for index, data in enumerate(datas):
            try:
                decoded.append((index, decode_object(data)))
            except ProtocolError as exc:
                raw.append((index, data, str(exc)))
        named = {e.blob for _, obj in decoded if isinstance(obj, Tree)
                 for e in obj.entries.values()}
        for index, data, problem in raw:
            try:
                blob = Blob(data)
            except ProtocolError:
                blob = None
            if blob is not None and blob.cid in named:
                decoded.append((index, blob))
            else:
                result.rejected.append((index, f"not a valid object: {problem}"))
        for index, obj in sorted(decoded, key=lambda item: item[0]):
            reason = self._check(obj)
            if reason:
                result.rejected.append((index, reason))
                continue
            put = self.store.put(obj)
            if put.status == "duplicate":
                result.ignored.append((index, "already known"))
                continue
            result.accepted.append(str(obj.cid))
            problem = self._apply(obj) if put.status == "stored" else None
            for released in put.released:
                self._apply(self.store.get(released))
            if problem:
                result.accepted.pop()
                result.rejected.append((index, problem))
        for chain in self.chains.values():
            chain.update()
        self.counters["ingest_accepted_total"] += len(result.accepted)
        self.counters["ingest_rejected_total"] += len(result.rejected)
        self.counters["ingest_ignored_total"] += len(result.ignored)
        result.rejected.sort()
        return result

    def ingest(self, objects: list[Any]) -> SubmitResult:
        result = self.ingest_bytes([obj.encode() for obj in objects])
        assert not result.rejected, result.rejected
        return result

    def _check(self, obj: Any) -> str | None:
        if isinstance(obj, Target):
            return "targets are followed by configuration, not submitted"
        if isinstance(obj, SignedObject):
            try:
                obj.verify()
            except ProtocolError as exc:
                return f"bad signature: {exc}"
        target = getattr(obj, "target", None)
        if target is not None and target not in self.chains:
            return f"this node does not follow target {target}"
        return None

    def _apply(self, obj: Any) -> str | None:
        chain = self.chains.get(getattr(obj, "target", None))
        if chain is None:
            return None
        try:
            if isinstance(obj, Commit):
                chain.on_commit(obj)
            elif isinstance(obj, Attestation):
                chain.on_attestation(obj)
            elif isinstance(obj, Evidence):
                chain.on_evidence(obj)
            elif isinstance(obj, Challenge):
                chain.on_challenge(obj)
            elif isinstance(obj, Ruling):
                chain.on_ruling(obj)
            elif isinstance(obj, StakeTx):
                pass
        except Exception as exc:  # fork choice refuses an attestation that can never count
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        self.store.close()


# -- the scenario -----------------------------------------------------------------------------
class Verifier:
    """A verifier's chain of attestations (seq, prev)."""

    def __init__(self, index: int, target: Target) -> None:
        self.key: SigningKey = ex.key(index)
        self.target = target
        self.seq = 0
        self.prev: CID | None = None

    def attest(self, head: CID, verdict: Verdict | None = None, *, seq: int | None = None
               ) -> Attestation:
        seq = self.seq if seq is None else seq
        prev = self.prev if seq == self.seq else None
        att = Attestation.create(self.key, target=self.target.cid, seq=seq, prev=prev, epoch=1,
                                 time_ms=GENESIS_MS + 120_000 + seq, head=head, verdict=verdict)
        if seq == self.seq:
            self.seq += 1
            self.prev = att.cid
        return att


def verdict(commit: Commit, result: str, ratio_ppm: int = 900_000) -> Verdict:
    measured = result in ("improved", "not_improved")
    return Verdict(commit=commit.cid, parent=commit.parents[0], result=result,
                   ratio_ppm=ratio_ppm if measured else 0,
                   lo_ppm=ratio_ppm - 4000 if measured else 0,
                   hi_ppm=ratio_ppm + 4000 if measured else 0, pairs=15 if measured else 0,
                   gate_seed=hashlib.sha256(commit.cid.digest).digest(), profile="avx2",
                   toolchain="rustc 1.95.0")


def make_commit(target: Target, files: dict[str, str], parent: CID, *, message: str,
                ratio_ppm: int, author: int = 5, minute: int = 1
                ) -> tuple[Commit, Tree, list[Blob]]:
    """A commit whose tree is the writable part of ``files`` (with its blobs)."""
    writable = {p: t for p, t in files.items() if not p.startswith(("Cargo", "gate/"))}
    blobs = [Blob(text.encode()) for text in writable.values()]
    tree = Tree({p: TreeEntry(Blob(t.encode()).cid) for p, t in writable.items()})
    commit = Commit.create(
        ex.key(author), target=target.cid, parents=[parent], tree=tree.cid,
        claim=Claim(profile="avx2", ratio_ppm=ratio_ppm, lo_ppm=ratio_ppm - 5000,
                    hi_ppm=ratio_ppm + 5000, pairs=7),
        time_ms=GENESIS_MS + minute * 60_000, message=message)
    return commit, tree, blobs


def commit_bundle(commit: Commit, tree: Tree, blobs: list[Blob]) -> bytes:
    return encode_bundle([commit.encode(), tree.encode(), *(b.encode() for b in blobs)])


@dataclass
class Scenario:
    node: StandInNode
    target: Target
    files: dict[str, dict[str, str]]
    """Commit name → its full file map, for building children."""
    cids: dict[str, CID]
    commits: dict[str, Commit]
    verifiers: dict[int, Verifier]
    evidence: Evidence

    def child(self, parent: str, name: str, message: str, edit: Callable[[str], str],
              path: str = "dft/src/lib.rs", ratio_ppm: int = 980_000, minute: int = 9
              ) -> tuple[Commit, Tree, list[Blob]]:
        files = dict(self.files[parent])
        files[path] = edit(files[path])
        parent_cid = self.target.cid if parent == "target" else self.cids[parent]
        built = make_commit(self.target, files, parent_cid, message=message,
                            ratio_ppm=ratio_ppm, minute=minute)
        self.files[name] = files
        self.cids[name] = built[0].cid
        self.commits[name] = built[0]
        return built


def build_scenario(node: StandInNode) -> Scenario:
    """target ← c1 (final, 0.90) ← c2 (accepted, 0.95) ← pend (no verdicts); c1 ← bad (gate
    failed: rejected); verifier 4 equivocates on bad and evidence is in."""
    chain = next(iter(node.chains.values()))
    target = chain.target
    sc = Scenario(node, target, {"target": dict(BASE_FILES)}, {"target": target.cid}, {},
                  {i: Verifier(i, target) for i in STAKES}, evidence=None)  # type: ignore[arg-type]
    c1 = sc.child("target", "c1", "radix-4 butterflies",
                  lambda s: s.replace("naive(v);", "radix4(v);"), ratio_ppm=900_000, minute=1)
    c2 = sc.child("c1", "c2", "montgomery reduction", lambda s: s.replace(
        "(x % 2013265921) as u32", "montgomery(x)"), path="baby-bear/src/lib.rs",
        ratio_ppm=950_000, minute=3)
    bad = sc.child("c1", "bad", "skip the bit reversal",
                   lambda s: s.replace("radix4(v);", "radix4_unordered(v);"),
                   ratio_ppm=700_000, minute=4)
    pend = sc.child("c2", "pend", "unroll the inner loop",
                    lambda s: s.replace("radix4(v);", "radix4_unrolled(v);"),
                    ratio_ppm=990_000, minute=5)
    objects: list[Any] = []
    for built in (c1, c2, bad, pend):
        objects.extend([built[0], built[1], *built[2]])
    node.ingest(objects)
    v = sc.verifiers
    atts = [v[i].attest(c1[0].cid, verdict(c1[0], "improved", 900_000 + 1000 * i))
            for i in HONEST]
    atts += [v[i].attest(c1[0].cid, verdict(bad[0], "gate_failed")) for i in HONEST]
    # Only verifier 3 has evaluated c2 so far: accepted (400 ≥ 1/3 of 1000), not final.
    atts.append(v[3].attest(c2[0].cid, verdict(c2[0], "improved", 950_000)))
    liar = v[BYZANTINE]
    lie = liar.attest(bad[0].cid, verdict(bad[0], "improved", 700_000))
    truth = liar.attest(c1[0].cid, verdict(bad[0], "gate_failed"), seq=0)
    sc.evidence = Evidence.create(ex.key(1), lie, truth)
    node.ingest([*atts, lie, truth, sc.evidence])
    return sc


# -- a real server ------------------------------------------------------------------------------
class ApiServer:
    """``serve_api`` for ``node`` in a thread with its own trio loop; a context manager.

    ``url`` is the bound ``http://127.0.0.1:PORT``; ``call(fn, *args)`` runs an async function
    on the server's loop (where the node's chains live) and returns its result.
    """

    START_TIMEOUT_S = 20.0

    def __init__(self, node: Any, **app_options: Any) -> None:
        self.node = node
        self.app_options = app_options
        self.url = ""
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from node.api import create_app, serve_api

        app = create_app(self.node, **self.app_options)
        with trio.CancelScope() as scope:
            self._cancel = scope
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self.url = await nursery.start(
                    lambda task_status: serve_api(self.node, "127.0.0.1", 0,
                                                  task_status=task_status, app=app))
                self.node.http_url = self.url
                self._ready.set()

    def __enter__(self) -> ApiServer:
        self._thread.start()
        if not self._ready.wait(self.START_TIMEOUT_S):
            raise TimeoutError("the API server did not start")
        if self._error is not None:
            raise RuntimeError("the API server failed to start") from self._error
        return self

    def call(self, fn: Callable, *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("the API server did not stop")

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class RecordingProposer:
    """A stand-in proposer role: records patches that look like unified diffs."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str | None]] = []

    async def submit_patch(self, text: str, message: str | None) -> dict:
        if "@@" not in text:
            raise ValueError("not a unified diff (no @@ hunk header)")
        self.patches.append((text, message))
        return {"position": len(self.patches)}
