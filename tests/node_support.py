"""Real poi node processes for tests and benchmarks, and the objects to feed them.

``NodeProcess`` runs ``python -m node.run_cli node run DIR`` (the daemon exactly as ``poi node
run`` starts it) in a data directory made here with a development (unencrypted) key, a config
and a genesis bundle. Tests wait on ``DIR/status.json`` with deadlines, never fixed sleeps, and
every process is stopped by PID (SIGTERM, then SIGKILL) by ``NodeCluster`` whatever happens.

``Client`` is an in-process libp2p peer (node.p2p) that publishes gossip and speaks the sync
protocol: the "outside world" a test drives the nodes with. ``Feed`` makes valid commits and
attestation chains signed by the genesis validators.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from dag.manifest import Genesis, load_manifest, make_genesis
from node.bundle import encode_bundle
from node.config import Config, write_config
from node.genesis_file import encode_genesis_file
from node.keystore import create_key
from node.p2p import P2PConfig, open_p2p
from node.topics import topic
from protocol.cid import CID
from protocol.keys import SigningKey
from protocol.objects import Attestation, Blob, Claim, Commit, Target, Tree, TreeEntry, Verdict

REPO = Path(__file__).resolve().parents[1]
VALIDATOR_STAKE = 100

MANIFEST = """\
name = "node-test"
profile = "generic"
description = "a tiny target for node tests"
writable = ["src/**"]
metric = "time_ns"

[commands]
build = ["true"]
gate = ["true", "{seed}"]
bench = ["true", "{seed}"]
"""


def seed_for(name: str) -> bytes:
    return hashlib.sha256(b"poi-node-test:" + name.encode()).digest()


def key_for(name: str) -> SigningKey:
    return SigningKey(seed_for(name))


def validator_keys(count: int = 4) -> list[SigningKey]:
    return [key_for(f"validator-{i}") for i in range(count)]


def now_ms() -> int:
    return int(time.time() * 1000)


def make_test_genesis(work: Path, *, epoch_seconds: int = 2,
                      genesis_time_ms: int | None = None, validators: int = 4) -> Genesis:
    """A genesis target over a tiny workspace, with the validator keys staked."""
    ws = work / "workspace"
    (ws / "src").mkdir(parents=True, exist_ok=True)
    (ws / "targets").mkdir(exist_ok=True)
    (ws / "src" / "lib.rs").write_text("pub fn f() {}\n")
    (ws / "Cargo.toml").write_text("[package]\nname = 'x'\n")
    (ws / "targets" / "test.toml").write_text(MANIFEST)
    manifest = load_manifest(ws / "targets" / "test.toml")
    stakes = [(k.public_key, VALIDATOR_STAKE) for k in validator_keys(validators)]
    return make_genesis(manifest, stakes,
                        genesis_time_ms=genesis_time_ms or now_ms() - 1000,
                        epoch_seconds=epoch_seconds)


def init_node_dir(directory: Path, name: str, *, genesis_file: bytes | None,
                  follow: tuple[str, ...] = (), bootstrap: tuple[str, ...] = (),
                  roles: tuple[str, ...] = ("observer",), http: bool = False) -> SigningKey:
    """A data directory as `poi init --dev-unencrypted-key` makes it, plus a genesis file."""
    directory.mkdir(parents=True, exist_ok=True)
    key = key_for(name)
    create_key(directory / "keys", None, dev_unencrypted=True, key=key)
    config = Config()
    config.node.name = name
    config.node.roles = list(roles)
    config.network.bootstrap = list(bootstrap)
    config.http.enabled = http
    config.targets.follow = list(follow)
    if genesis_file is not None:
        (directory / "genesis.bundle").write_bytes(genesis_file)
        config.targets.genesis_files = ["genesis.bundle"]
    write_config(directory, config)
    return key


class NodeProcess:
    """One ``node run`` process and its data directory."""

    def __init__(self, name: str, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self.name = name
        self.data_dir = data_dir
        self.key = key_for(name)
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "stderr.log"
        self.peer_id = self.key.peer_id

    def start(self) -> NodeProcess:
        assert self.proc is None or self.proc.poll() is not None
        self.status_path.unlink(missing_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.run_cli", "node", "run", str(self.data_dir)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def status_path(self) -> Path:
        return self.data_dir / "status.json"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite"

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
             what: str) -> dict[str, Any]:
        """The first status.json (written by this process) satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            if doc.get("pid") == self.pid and predicate(doc):
                return doc
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) waiting for "
                                     f"{what}; log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {what} within {timeout}s; last status "
                                   f"{json.dumps(doc)[:600]}\nlog tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        return self.wait(lambda d: d.get("ready") is True, timeout, "ready")

    @property
    def addr(self) -> str:
        return self.wait_ready()["listen_addrs"][0]

    def chain(self, target: CID) -> dict[str, Any]:
        return self.status().get("chains", {}).get(str(target), {})

    def stats(self) -> dict[str, Any]:
        return self.status().get("stats", {})

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self, timeout: float = 10) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in ``timeout``. Returns its status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def has_object(self, cid: CID) -> bool:
        """Whether the node's store holds ``cid`` (stored or pending), read-only."""
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=10)
        try:
            for table in ("objects", "pending"):
                if conn.execute(f"SELECT 1 FROM {table} WHERE cid=?",
                                (bytes(cid),)).fetchone():
                    return True
            return False
        finally:
            conn.close()


class NodeCluster:
    """Owns node processes; ``with NodeCluster(dir, genesis) as c:`` stops them all on exit."""

    def __init__(self, root: Path, genesis: Genesis) -> None:
        self.root = root
        self.genesis = genesis
        self.bundle = encode_genesis_file(genesis)
        self.nodes: dict[str, NodeProcess] = {}

    def __enter__(self) -> NodeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes.values():  # SIGTERM all at once, then wait for each
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            try:
                node.terminate(timeout=5)
            except Exception:
                node.kill()

    def add(self, name: str, *, bootstrap: tuple[str, ...] = (), with_genesis: bool = True,
            roles: tuple[str, ...] = ("observer",), env: dict[str, str] | None = None,
            start: bool = True) -> NodeProcess:
        directory = self.root / name
        if not (directory / "config.toml").exists():
            init_node_dir(directory, name, genesis_file=self.bundle if with_genesis else None,
                          follow=() if with_genesis else (str(self.genesis.target.cid),),
                          bootstrap=bootstrap, roles=roles)
        node = NodeProcess(name, directory, env)
        self.nodes[name] = node
        return node.start() if start else node


def wait_all(nodes: list[NodeProcess], predicate: Callable[[dict[str, Any]], bool],
             timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        node.wait(predicate, max(0.1, deadline - time.monotonic()), what)


# -- objects ---------------------------------------------------------------------------------------

class Feed:
    """Valid objects for a genesis: commits by a proposer key, attestation chains by the
    validators (each validator's seq/prev chain is tracked here)."""

    def __init__(self, genesis: Genesis) -> None:
        self.target: Target = genesis.target
        self.author = key_for("proposer")
        self.validators = validator_keys(len(genesis.target.validators))
        self.tips: dict[bytes, tuple[int, CID]] = {}
        self.counter = 0

    def commit(self, parent: CID | None = None, *, time_ms: int | None = None
               ) -> tuple[Commit, Tree, Blob]:
        self.counter += 1
        blob = Blob(f"pub fn f() {{ /* version {self.counter} */ }}\n".encode())
        tree = Tree({"src/lib.rs": TreeEntry(blob.cid, 0o644)})
        commit = Commit.create(
            self.author, target=self.target.cid, parents=[parent or self.target.cid],
            tree=tree.cid, claim=Claim(profile="generic", ratio_ppm=950_000, lo_ppm=940_000,
                                       hi_ppm=960_000, pairs=7),
            time_ms=time_ms or now_ms(), message=f"change {self.counter}")
        return commit, tree, blob

    def attest(self, key: SigningKey, head: CID, *, verdict_on: Commit | None = None,
               result: str = "improved", time_ms: int | None = None,
               epoch: int | None = None, ratio_ppm: int = 950_000,
               half_width_ppm: int = 10_000) -> Attestation:
        seq, prev = self.tips.get(key.public_key, (-1, None))
        when = time_ms or now_ms()
        verdict = None
        if verdict_on is not None:
            measured = result in ("improved", "not_improved")
            verdict = Verdict(
                commit=verdict_on.cid, parent=verdict_on.parents[0], result=result,
                ratio_ppm=ratio_ppm if measured else 0,
                lo_ppm=ratio_ppm - half_width_ppm if measured else 0,
                hi_ppm=ratio_ppm + half_width_ppm if measured else 0, pairs=15 if measured else 0,
                gate_seed=hashlib.sha256(b"seed" + bytes(verdict_on.cid)).digest(),
                profile="generic", toolchain="rustc test")
        att = Attestation.create(
            key, target=self.target.cid, seq=seq + 1, prev=prev,
            epoch=self.target.epoch_at(when) if epoch is None else epoch, time_ms=when,
            head=head, verdict=verdict)
        self.tips[key.public_key] = (att.seq, att.cid)
        return att

    def endorse(self, commit: Commit, **verdict: int) -> list[Attestation]:
        """Every validator: improved on ``commit`` (``ratio_ppm``, ``half_width_ppm``: see
        ``attest``), head vote for it."""
        return [self.attest(k, commit.cid, verdict_on=commit, **verdict)
                for k in self.validators]

    def votes(self, head: CID, per_validator: int) -> list[Attestation]:
        """``per_validator`` vote-only attestations by each validator, interleaved."""
        out = []
        for _ in range(per_validator):
            for key in self.validators:
                out.append(self.attest(key, head))
        return out


# -- an in-process peer ----------------------------------------------------------------------------

class Client:
    """A libp2p peer in the test process (trio): publishes gossip, sends sync requests."""

    def __init__(self, p2p: Any) -> None:
        self.p2p = p2p

    @property
    def peer_id(self) -> str:
        return self.p2p.peer_id

    async def wait_topic(self, name: str, peer_id: str, timeout: float = 20) -> None:
        with trio.fail_after(timeout):
            while peer_id not in self.p2p.topic_peers(name):
                await trio.sleep(0.05)

    async def publish(self, target: CID, kind: str, objects: list[Any]) -> None:
        data = encode_bundle([o.encode() if hasattr(o, "encode") else o for o in objects])
        await self.p2p.publish(topic(target, kind), data)

    async def publish_raw(self, target: CID, kind: str, data: bytes) -> None:
        await self.p2p.publish(topic(target, kind), data)


@asynccontextmanager
async def client(name: str, connect_to: str, *, refuse: tuple[str, ...] = (),
                 handlers: dict[str, Any] | None = None):
    """A Client connected to ``connect_to`` only (peers in ``refuse`` are banned, so peer
    exchange cannot connect them to it)."""
    config = P2PConfig(key=key_for(name), peer_exchange=False, bootstrap=(connect_to,))
    async with open_p2p(config) as p2p:
        for peer in refuse:
            p2p.ban(peer, 3600, "test client talks to one node only")
        for protocol, handler in (handlers or {}).items():
            p2p.set_handler(protocol, handler)
        with trio.fail_after(20):
            while not p2p.connected_peers():
                await trio.sleep(0.05)
        yield Client(p2p)
