"""The node daemon: one trio process holding the store, the chains, libp2p, sync, roles and HTTP.

::

    run_node(config, data_dir, passphrase)
      └─ Node.run                                   one nursery; cancelling it stops everything
           ├─ open_p2p                              host, gossipsub, request/response, peers
           ├─ per followed target: 6 gossip topics  validators = node/ingest.py (store + apply)
           ├─ Sync.run                              catch-up on connect, anti-entropy, fetching
           ├─ epoch ticks                           chain.tick(now) + chain.update()
           ├─ status.json writer                    read by tests, the devnet, `poi node status`
           ├─ roles                                 VerifierRole per target, ProposerRole
           └─ serve_api                             HTTP, when config.http.enabled

Blocking work leaves the event loop: SQLite writes and signature checks run in worker threads,
benchmarks in the roles' threads and sandboxes. The data directory holds ``store.sqlite`` (the
DAG), ``keys/``, ``slashing-protection.sqlite``, ``config.toml``, ``status.json`` and
``node.log``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio

from dag.store import Store, StoredObject
from protocol.cid import CID
from protocol.errors import ProtocolError
from protocol.keys import SigningKey
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Commit,
    Target,
    Tree,
    decode_object,
)

from .chain import TargetChain
from .config import Config
from .events import EventHub
from .genesis_file import GenesisFileError, load_genesis_file
from .ingest import Ingest, SubmitResult
from .p2p import (
    ACCEPT,
    MAX_GOSSIP_BYTES,
    P2P,
    Ignore,
    P2PConfig,
    P2PError,
    Reject,
    open_p2p,
)
from .sync import PROTOCOL as SYNC_PROTOCOL
from .sync import FetchError, Sync
from .topics import kind_of, pack_bundles, topic, topics_of
from .validation import Action, SignatureVerifier

log = logging.getLogger("poi.node")

STORE_NAME = "store.sqlite"
STATUS_NAME = "status.json"
SLASHING_PROTECTION_NAME = "slashing-protection.sqlite"
TICK_S = 0.5
"""How often the epoch clock is checked."""
PROPOSER_WORK_DIR = Path("work") / "proposer-repo"
"""The proposer role's working directory (its experiment log, memory, workspace) in the data
directory."""
PENDING_TTL_S = 3600
"""Pending objects (waiting for dependencies) are dropped after an hour ..."""
MAX_PENDING = 100_000
"""... or beyond this many, the oldest first (node/runtime.py ``_evict_pending``)."""
PENDING_SWEEP_S = 60.0
COUNTED_KINDS = {"commit": "commits", "attestation": "attestations", "evidence": "evidence",
                 "challenge": "challenges"}
"""Object type -> the per-target count the status reports."""
STATUS_INTERVAL_S = 0.5
"""How often status.json is rewritten (only when something in it changed)."""
SHUTDOWN_DEADLINE_S = 10.0
"""After SIGINT/SIGTERM the process exits within this even if a thread does not return."""
ROLE_FETCH_TIMEOUT_S = 60.0
TRACE_ENV = "POI_TRACE_FILE"
"""Diagnostics for benchmarks: when set, the node appends one JSON line per stored commit and
per store transaction (``{"t": wall-clock ns, "ev": "commit" | "admitted", "v": cid | n}``)."""
INITIAL_SYNC_TIMEOUT_S = 15.0
"""A node with bootstrap peers catches up from one of them before it subscribes to gossip
(so a late joiner is filled by sync, not by a flood of messages whose parents it lacks); if no
catch-up completes within this, it subscribes anyway and keeps catching up."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("poi")
    except Exception:
        return "0.1.0"


VERSION = _version()


class NodeError(Exception):
    """The node cannot start: the message says what to fix."""


class Node:
    """One poi node (see the module docstring). Attributes per /tmp/poi/CONTRACT.md."""

    def __init__(self, config: Config, data_dir: Path, key: SigningKey) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.key = key
        self.peer_id: str = key.peer_id
        self.roles: list[str] = list(dict.fromkeys(config.node.roles))
        self.name = config.node.name or self.peer_id[-8:]
        self.events = EventHub()
        self.store = Store(self.data_dir / STORE_NAME)
        self.chains: dict[CID, TargetChain] = {}
        self.follow: set[CID] = set()
        self.signatures = SignatureVerifier(threads=max(2, os.cpu_count() or 2))
        self.ingest = Ingest(self.store, self.chains, self.follow, verifier=self.signatures,
                             clock_ms=self.now_ms)
        self.ingest.on_target = self._on_target
        self.ingest.object_listeners.append(self._on_object)
        self.ingest.head_listeners.append(self._on_head)
        self.ingest.wants_events = lambda: self.events.subscriber_count > 0
        self.ingest.on_admitted = self._on_admitted
        self._trace_file = None
        if os.environ.get(TRACE_ENV):
            self._trace_file = open(os.environ[TRACE_ENV], "a", buffering=1)  # noqa: SIM115
            self.ingest.trace = self._trace
        self.p2p: P2P | None = None
        self.sync: Sync | None = None
        self.verifiers: dict[CID, Any] = {}
        self.proposer: Any = None
        self._proposer_claimed = False
        self.http_url: str | None = None
        self.phase = "starting"
        self._started = time.monotonic()
        self._nursery: trio.Nursery | None = None
        self._subscribed: set[CID] = set()
        self._initial_sync = trio.Event()
        self._counts: dict[CID, dict[str, int]] = {}
        self._object_total: int | None = None
        """Objects in the store: counted once at load, then kept from what ingest admits
        (counting the table is a scan of every object, too slow for every status write)."""
        self.pending_evicted = 0
        self._last_status = ""
        self.publish_stats = {"gossip_own_messages_total": 0, "gossip_own_errors_total": 0}

    # -- clock ------------------------------------------------------------------------------------
    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Read genesis files and config; rebuild every followed target's chain from the store."""
        for cid_text in self.config.targets.follow:
            try:
                self.follow.add(CID.parse(cid_text))
            except ProtocolError as exc:
                raise NodeError(f"config targets.follow: {cid_text!r}: {exc}") from None
        for name in self.config.targets.genesis_files:
            self.follow.update(self._load_genesis(self.data_dir / name))
        started = time.monotonic()
        for cid in sorted(self.follow):
            target = self.store.get(cid) if self.store.has(cid) else None
            if isinstance(target, Target):
                self._make_chain(target)
        self._object_total = self.store.count()
        log.info("loaded %d target(s) from %s in %.2fs (%d objects, %d pending)",
                 len(self.chains), self.store.path, time.monotonic() - started,
                 self._object_total, self.store.pending_count())

    def _load_genesis(self, path: Path) -> list[CID]:
        """Store a genesis file's target, base tree and blobs; return the targets in it."""
        try:
            return [target.cid for target in load_genesis_file(path, self.store)]
        except GenesisFileError as exc:
            raise NodeError(str(exc)) from None

    def _make_chain(self, target: Target) -> TargetChain:
        chain = TargetChain.load(self.store, target, self.now_ms())
        chain.listeners.append(self.events.publish)
        self.chains[target.cid] = chain
        log.info("following target %s (%s): head %s, finalized %s", target.name, target.cid,
                 chain.head, chain.finalized)
        return chain

    def _on_target(self, target: Target) -> None:
        """A followed target arrived by sync: make its chain, then subscribe and start roles."""
        chain = self._make_chain(target)
        if self._nursery is not None:
            self._nursery.start_soon(self._start_target, chain)

    def _trace(self, event: str, value: Any) -> None:
        self._trace_file.write(json.dumps({"t": time.time_ns(), "ev": event, "v": value}) + "\n")

    # -- contract: status and stats ---------------------------------------------------------------
    @property
    def synced(self) -> bool:
        if any(cid not in self.chains for cid in self.follow):
            return False
        if self.sync is None:
            return False
        if self.sync.synced_with:
            return True
        return not self.config.network.bootstrap and not self.p2p.connected_peers()

    def status(self) -> dict[str, Any]:
        verifying = next((role.current for role in self.verifiers.values()
                          if getattr(role, "current", None) is not None), None)
        queue = 0
        for role in self.verifiers.values():
            with contextlib.suppress(Exception):
                queue += int(role.queue_length())
        return {
            "peer_id": self.peer_id,
            "public_key": self.key.public_key.hex(),
            "roles": list(self.roles),
            "listen_addrs": self.p2p.listen_addrs if self.p2p else [],
            "peers": sorted(self.p2p.connected_peers()) if self.p2p else [],
            "synced": self.synced,
            "queue_length": queue,
            "verifying": None if verifying is None else str(verifying),
            "targets": [str(c) for c in sorted(self.follow)],
            "pending_objects": self.store.pending_count(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "http_url": self.http_url,
            "version": VERSION,
            "proposer": self._proposer_status(),
        }

    def _proposer_status(self) -> dict[str, Any] | None:
        """The proposer role's own account (state, strategy, best commit...), when it runs."""
        if self.proposer is None:
            return None
        try:
            return dict(self.proposer.status())
        except Exception as exc:  # a status must never take the node's status down with it
            return {"state": f"unknown: {exc}"}

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        if self.p2p is not None:
            out.update(self.p2p.stats())
        out.update(self.ingest.stats)
        out.update(self.signatures.stats)
        if self.sync is not None:
            out.update(self.sync.stats)
        out.update(self.publish_stats)
        if self._object_total is None:
            self._object_total = self.store.count()
        out["store_objects"] = self._object_total
        out["store_pending"] = self.store.pending_count()
        out["store_pending_evicted_total"] = self.pending_evicted
        out["events_subscribers"] = self.events.subscriber_count
        out["uptime_seconds"] = round(time.monotonic() - self._started, 3)
        return out

    def chain_summary(self) -> dict[str, Any]:
        """Per target: head, finalized, epoch and object counts (counted in the store once,
        then kept from what ingest admits: a count is a scan of an index)."""
        out = {}
        for cid, chain in self.chains.items():
            if cid not in self._counts:
                self._counts[cid] = {kind: self.store.count_of(kind, cid)
                                     for kind in COUNTED_KINDS.values()}
            out[str(cid)] = {
                "name": chain.target.name, "head": str(chain.head),
                "finalized": str(chain.finalized), "epoch": chain.epoch, **self._counts[cid],
            }
        return out

    # -- contract: objects in ---------------------------------------------------------------------
    async def submit_objects(self, objects: list[bytes]) -> SubmitResult:
        """Validate each object as gossip does, store and apply it, and gossip what was new."""
        result, usable = await self.ingest.submit(objects)
        if usable:
            await self._gossip(usable)
        return result

    async def publish_own(self, objects: Sequence[StoredObject | bytes]) -> None:
        """Store, apply and gossip the node's own objects (commits with tree and blobs,
        attestations, evidence, challenges, rulings). Bytes are decoded as objects."""
        objs = [decode_object(o) if isinstance(o, bytes | bytearray) else o for o in objects]
        await self.ingest.own(objs)
        await self._gossip(objs)

    async def fetch(self, cids: list[CID], timeout: float = 30.0) -> None:
        """Get missing objects from peers by sync; FetchError after ``timeout``."""
        if self.sync is None:
            raise FetchError("the node is not connected to the network yet")
        await self.sync.fetch(cids, timeout=timeout)

    async def _gossip(self, objects: Sequence[StoredObject]) -> None:
        if self.p2p is None:
            return
        for name, data in gossip_messages(objects):
            try:
                await self.p2p.publish(name, data)
                self.publish_stats["gossip_own_messages_total"] += 1
            except P2PError as exc:
                self.publish_stats["gossip_own_errors_total"] += 1
                log.warning("could not gossip on %s: %s", name, exc)

    # -- hooks from ingest ------------------------------------------------------------------------
    def _on_admitted(self, admitted: Any) -> None:
        if self._object_total is not None:
            self._object_total += len(admitted.stored)
        for obj in admitted.stored:
            kind = COUNTED_KINDS.get(getattr(obj, "TYPE", ""))
            counts = self._counts.get(getattr(obj, "target", None))
            if kind is not None and counts is not None:
                counts[kind] += 1

    def _on_object(self, obj: StoredObject) -> None:
        role = self.verifiers.get(getattr(obj, "target", None))
        if role is None:
            return
        if isinstance(obj, Commit):
            role.on_commit(obj)
        elif isinstance(obj, Attestation):
            role.on_attestation(obj)
        elif isinstance(obj, Challenge):
            role.on_challenge(obj)

    def _on_head(self, chain: TargetChain) -> None:
        role = self.verifiers.get(chain.cid)
        if role is not None:
            role.on_head_change()

    # -- gossip -----------------------------------------------------------------------------------
    async def _subscribe(self, target: CID) -> None:
        if target in self._subscribed or self.p2p is None:
            return
        self._subscribed.add(target)
        for kind, name in topics_of(target).items():
            sub = await self.p2p.subscribe(name, partial(self._validate, name, target, kind))
            self._nursery.start_soon(_drain, sub.messages)
            self._nursery.start_soon(_drain, sub.ignored)

    async def _validate(self, name: str, target: CID, kind: str, peer: str, data: bytes) -> Any:
        check = await self.ingest.gossip(name, target, kind, peer, data)
        if check.action is Action.ACCEPT:
            return ACCEPT
        if check.action is Action.REJECT:
            return Reject(check.reason)
        return Ignore(check.reason)

    # -- roles ------------------------------------------------------------------------------------
    async def _start_target(self, chain: TargetChain) -> None:
        with trio.move_on_after(INITIAL_SYNC_TIMEOUT_S) as waited:
            await self._initial_sync.wait()
        if waited.cancelled_caught:
            log.warning("no catch-up with a peer within %.0fs: subscribing to gossip anyway",
                        INITIAL_SYNC_TIMEOUT_S)
        await self._subscribe(chain.cid)
        if "verifier" in self.roles:
            self._nursery.start_soon(self._start_verifier, chain)
        if "proposer" in self.roles and not self._proposer_claimed:
            self._proposer_claimed = True  # one proposer per node, on its first target
            self._nursery.start_soon(self._start_proposer, chain)

    async def _base_content(self, chain: TargetChain) -> Tree:
        """The target's base tree with every blob it names, fetched from peers if need be."""
        target = chain.target
        if not self.store.has(target.base_tree):
            await self.fetch([target.base_tree], timeout=ROLE_FETCH_TIMEOUT_S)
        tree = self.store.get_typed(target.base_tree, Tree)
        blobs = [entry.blob for entry in tree.entries.values() if not self.store.has(entry.blob)]
        if blobs:
            await self.fetch(blobs, timeout=ROLE_FETCH_TIMEOUT_S)
        return tree

    def _pipeline(self, chain: TargetChain, base_tree: Tree, role: str) -> Any:
        from verifier.pipeline import Pipeline

        section = self.config.verifier
        work = self.data_dir / "work" / role / str(chain.cid)[-16:]
        return Pipeline(chain.target, base_tree, work, sandbox=section.sandbox,
                        bench_lock=section.bench_lock,
                        build_cache=self.data_dir / section.build_cache
                        if section.build_cache else None)

    async def _start_verifier(self, chain: TargetChain) -> None:
        try:
            module = importlib.import_module("node.roles.verifier")
        except ImportError as exc:
            log.warning("verifier role unavailable (node.roles.verifier: %s): observing only",
                        exc)
            return
        mode = self.config.verifier.byzantine or "honest"
        try:
            from verifier.attest import AttestationSigner, SlashingProtection

            base_tree = await self._base_content(chain)
            try:
                pipeline = self._pipeline(chain, base_tree, "verifier")
            except Exception as exc:
                if mode == "honest":
                    raise
                log.warning("no evaluation pipeline here (%s): the %s verifier signs without "
                            "measuring", exc, mode)
                pipeline = None
            protection = SlashingProtection(self.data_dir / SLASHING_PROTECTION_NAME,
                                            self.key.public_key)
            signer = AttestationSigner(self.key, protection)
            role = module.VerifierRole(self, chain, pipeline, signer, mode=mode,
                                       pairs=self.config.verifier.pairs or None)
        except Exception as exc:
            log.error("verifier role for %s unavailable: %s", chain.target.name, exc)
            return
        self.verifiers[chain.cid] = role
        log.info("verifier role running on %s (mode %s)", chain.target.name, mode)
        await role.run()

    async def _start_proposer(self, chain: TargetChain) -> None:
        try:
            module = importlib.import_module("proposer.role")
        except ImportError as exc:
            log.warning("proposer role unavailable (proposer.role: %s)", exc)
            return
        try:
            base_tree = await self._base_content(chain)
            pipeline = self._pipeline(chain, base_tree, "proposer")
            section = self.config.proposer
            patches = Path(section.patches_dir) if section.patches_dir else None
            if patches is not None and not patches.is_absolute():
                patches = self.data_dir / patches
            role = construct(module.ProposerRole, self, chain, strategy=section.strategy,
                             work_dir=self.data_dir / PROPOSER_WORK_DIR,
                             pipeline=pipeline, config=section, patches_dir=patches,
                             model=section.model, max_tokens=section.max_tokens,
                             max_iterations=section.max_iterations)
        except Exception as exc:
            log.error("proposer role for %s unavailable: %s", chain.target.name, exc)
            return
        self.proposer = role
        log.info("proposer role running on %s (strategy %s)", chain.target.name,
                 self.config.proposer.strategy)
        await role.run()

    # -- loops ------------------------------------------------------------------------------------
    async def _tick(self) -> None:
        while True:
            now = self.now_ms()
            for chain in list(self.chains.values()):
                if chain.tick(now):
                    log.info("%s: epoch %d", chain.target.name, chain.epoch)
                    self.ingest.update(chain)
            await trio.sleep(TICK_S)

    async def _evict_pending(self) -> None:
        """Bound what peers can make the node hold pending (``Store.evict_pending`` says why
        nothing is lost)."""
        while True:
            await trio.sleep(PENDING_SWEEP_S)
            try:
                dropped = await trio.to_thread.run_sync(functools.partial(
                    self.store.evict_pending,
                    older_than_ms=self.now_ms() - PENDING_TTL_S * 1000, keep=MAX_PENDING))
            except Exception as exc:  # the disk; the next sweep tries again
                log.warning("evicting pending objects failed: %s", exc)
                continue
            if dropped:
                self.pending_evicted += dropped
                log.info("dropped %d pending object(s) held over %d s or beyond %d",
                         dropped, PENDING_TTL_S, MAX_PENDING)

    def status_document(self) -> dict[str, Any]:
        mesh = {}
        if self.p2p is not None:
            for cid in sorted(self._subscribed):
                for kind, name in topics_of(cid).items():
                    mesh[f"{str(cid)[-8:]}/{kind}"] = len(self.p2p.mesh_peers(name))
        return {"ready": self.phase == "running", "phase": self.phase, "pid": os.getpid(),
                "name": self.name, "data_dir": str(self.data_dir), **self.status(),
                "chains": self.chain_summary(), "mesh": mesh, "stats": self.stats()}

    def write_status(self, force: bool = False) -> None:
        doc = self.status_document()
        stable = {k: v for k, v in doc.items() if k not in ("uptime_s", "stats")}
        stable["counts"] = {k: v for k, v in doc["stats"].items()
                            if "seconds" not in k and not k.startswith("rr_")}
        key = json.dumps(stable, sort_keys=True, default=str)
        if not force and key == self._last_status:
            return
        self._last_status = key
        doc["updated_ms"] = self.now_ms()
        path = self.data_dir / STATUS_NAME
        tmp = path.with_name(f".{STATUS_NAME}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)

    async def _status_loop(self) -> None:
        while True:
            await trio.sleep(STATUS_INTERVAL_S)
            try:
                self.write_status()
            except OSError as exc:
                log.warning("cannot write %s: %s", STATUS_NAME, exc)

    async def _serve_http(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            from .api import serve_api
        except ImportError as exc:
            log.warning("HTTP API unavailable (node.api: %s)", exc)
            task_status.started(None)
            return
        http = self.config.http
        await serve_api(self, http.host, http.port, task_status=task_status)

    # -- the whole node ---------------------------------------------------------------------------
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started(self)`` once ready."""
        try:
            self.load()
            # What loading built (the chains' indices, fork choice, ledger: about a million
            # objects for a 10,000-commit DAG) lives as long as the node: out of the collector's
            # sight, a full collection no longer walks it (measured 0.3-1 s pauses without).
            gc.freeze()
            self.write_status(force=True)
            p2p_config = P2PConfig(key=self.key, listen=tuple(self.config.network.listen),
                                   bootstrap=tuple(self.config.network.bootstrap))
            async with open_p2p(p2p_config) as p2p, trio.open_nursery() as nursery:
                self.p2p, self._nursery = p2p, nursery
                self.sync = Sync(p2p, self.store, self.ingest, self.chains, self.follow)
                self.ingest.on_missing = self.sync.missing
                self.sync.on_synced.append(lambda peer: self._initial_sync.set())
                if not self.config.network.bootstrap:
                    self._initial_sync.set()
                p2p.set_handler(SYNC_PROTOCOL, self.sync.handle)
                nursery.start_soon(self.sync.run)
                nursery.start_soon(self._tick)
                nursery.start_soon(self._status_loop)
                nursery.start_soon(self._evict_pending)
                if self.config.http.enabled:
                    try:
                        self.http_url = await nursery.start(self._serve_http)
                    except Exception as exc:
                        log.error("HTTP API did not start: %s", exc)
                for chain in list(self.chains.values()):
                    nursery.start_soon(self._start_target, chain)
                self.phase = "running"
                self.write_status(force=True)
                log.info("node %s ready: peer %s, listening on %s, HTTP %s", self.name,
                         self.peer_id, ", ".join(p2p.listen_addrs), self.http_url or "off")
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self.phase = "stopped"
            with contextlib.suppress(Exception):
                self.write_status(force=True)
            with contextlib.suppress(Exception):
                for role in self.verifiers.values():
                    protection = getattr(getattr(role, "signer", None), "protection", None)
                    if protection is not None:
                        protection.close()
            self.store.close()


async def _drain(channel: trio.MemoryReceiveChannel) -> None:
    async for _ in channel:
        pass


def construct(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` with only the keyword arguments its signature accepts."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(*args, **kwargs)
    return cls(*args, **{k: v for k, v in kwargs.items() if k in params})


def gossip_messages(objects: Sequence[StoredObject]) -> list[tuple[str, bytes]]:
    """(topic, bundle) messages carrying ``objects``: each commit with its tree and the blobs
    that fit under the gossip cap; every other kind packed into as few bundles as fit. Trees
    and blobs that no commit here names are not gossiped (peers get them by sync)."""
    by_cid = {obj.cid: obj for obj in objects}
    grouped: dict[tuple[CID, str], list[bytes]] = {}
    out: list[tuple[str, bytes]] = []
    for obj in objects:
        if isinstance(obj, Blob | Tree | Target):
            continue
        kind = kind_of(obj.TYPE)
        if kind is None:
            continue
        if isinstance(obj, Commit):
            out.append((topic(obj.target, "commits"), _commit_bundle(obj, by_cid)))
        else:
            grouped.setdefault((obj.target, kind), []).append(obj.encode())
    for (target, kind), datas in grouped.items():
        for bundle in pack_bundles(datas, max_bytes=MAX_GOSSIP_BYTES):
            out.append((topic(target, kind), bundle))
    return out


def _commit_bundle(commit: Commit, by_cid: dict[CID, StoredObject]) -> bytes:
    items = [commit.encode()]
    tree = by_cid.get(commit.tree)
    budget = MAX_GOSSIP_BYTES - 64 - len(items[0])
    if isinstance(tree, Tree) and len(tree.encode()) + 8 < budget:
        items.append(tree.encode())
        budget -= len(tree.encode()) + 8
        for entry in tree.entries.values():
            blob = by_cid.get(entry.blob)
            if isinstance(blob, Blob) and len(blob.data) + 8 < budget:
                items.append(blob.data)
                budget -= len(blob.data) + 8
    return pack_bundles(items, max_bytes=MAX_GOSSIP_BYTES, max_objects=len(items))[0]


# -- running the process --------------------------------------------------------------------------

async def run_node(config: Config, data_dir: Path, passphrase: str | None) -> None:
    """Run a node from its data directory until SIGINT or SIGTERM (then stop within seconds).

    Prints one JSON line ``{"event": "ready", ...}`` on stdout once the node is ready."""
    from .keystore import load_key

    data_dir = Path(data_dir)
    key = load_key(data_dir / "keys", passphrase).key
    node = Node(config, data_dir, key)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, node, nursery.cancel_scope)
        await nursery.start(_run_then_cancel, node, nursery.cancel_scope)
        sys.stdout.write(json.dumps({
            "event": "ready", "name": node.name, "peer_id": node.peer_id, "pid": os.getpid(),
            "listen_addrs": node.p2p.listen_addrs if node.p2p else [],
            "http_url": node.http_url, "status_file": str(data_dir / STATUS_NAME)}) + "\n")
        sys.stdout.flush()
    log.info("node %s stopped", node.name)


async def _stop_on_signal(node: Node, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            node.phase = "stopping"
            _exit_later(SHUTDOWN_DEADLINE_S)
            scope.cancel()
            return


async def _run_then_cancel(node: Node, scope: trio.CancelScope,
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    try:
        await node.run(task_status=task_status)
    finally:
        scope.cancel()


def _exit_later(seconds: float) -> None:
    """A watchdog: a thread stuck in blocking work must not keep a stopped node alive."""
    def hard_exit() -> None:
        logging.getLogger("poi.node").error("shutdown took over %.0fs: exiting now", seconds)
        logging.shutdown()
        os._exit(3)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()
