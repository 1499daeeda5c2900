"""The devnet's nodes and their data directories.

``plan_devnet`` decides, without touching the disk, who runs what: two proposers each feeding
its own share of the good example patches (whole ``Depends-On`` groups, so each proposer can
apply its patches in order; the shares are siblings on the genesis, so the DAG branches), three
honest verifiers and one Byzantine verifier with genesis stakes, and an *adversary* — a key
with no node — that submits the hostile patches as signed commits over a node's HTTP API, the
way anyone on a real network could. ``write_layout`` then writes one data directory per node
(key, ``config.toml``, the genesis bundle, a proposer's patches) and ``devnet.json``, the map
of the whole network that the launcher, the live view and the tests read.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.config import Config, write_config
from node.keystore import create_key
from protocol.keys import SigningKey
from verifier.candidates import PatchFile, read_patch

from .errors import DevnetError
from .genesis import EXAMPLE, GENESIS_FILE

PROPOSERS = ("proposer-1", "proposer-2")
HONEST_VERIFIERS = ("verifier-1", "verifier-2", "verifier-3")
BYZANTINE = "byzantine"
ADVERSARY = "adversary"
"""Signs the hostile commits; not a node: it submits them through proposer-1's HTTP API."""

BYZANTINE_MODES = ("lie", "equivocate")
MANIFEST_NAME = "devnet.json"
LOG_DIR = "logs"
PATCHES_DIR = "patches"
BUILD_CACHE = "build-cache"
"""One build cache for every node of the devnet, kept across devnet runs.

A pipeline caches builds keyed by (workspace tree CID, toolchain, profile), each entry locked
across processes, by default in its own work directory. On one host the six nodes would then
build every tree up to five times — about 50 release builds of ≈ 5–10 s on two cores, most of
the demo's time. So every node's config names this directory as its ``verifier.build_cache``:
the proposer's build of a commit is the one its verifiers use. Every verifier still runs the
gate with its own seed and its own paired benchmark. On a real network each verifier builds for
itself."""

DEFAULT_HOSTILE = (
    "01-twiddle-table-cap-wrong-at-large-sizes.patch",
    "02-avx2-wrong-blend-mask.patch",
    "03-result-cache-across-calls.patch",
    "04-detect-benchmark.patch",
    "05-bench-reports-less.patch",
    "06-symlink-outside.patch",
    "07-build-script.patch",
    "08-include-bytes-host-file.patch",
    "12-memory-bomb.patch",
    "13-thread-bomb.patch",
)
"""The hostile patches a default run submits: every one the network must *reject* (a gate, a
build or a scope failure), each a different threat. Left out by default, included by
``--hostile all``: 09 and 10 (network and file access at run time: the sandbox makes them
harmless, so they end ``not_improved`` — held back, not rejected — after a full paired
benchmark on every verifier) and 11 (an endless loop: every verifier burns the whole 30 s gate
timeout on one of the machine's cores)."""

AVX2_ONLY_HOSTILE = ("02-avx2-wrong-blend-mask.patch",)
"""Wrong only on the AVX2 path: on an AVX-512 target the gate runs the AVX-512 kernels, so the
patch is harmless there and ends ``not_improved``; a default run on such a CPU leaves it out."""


@dataclass(frozen=True)
class NodePlan:
    name: str
    roles: tuple[str, ...]
    p2p_port: int
    http_port: int
    stake: int = 0
    byzantine: str = ""
    patches: tuple[str, ...] = ()
    """Good patch file names this proposer feeds, in the order it applies them."""

    @property
    def is_validator(self) -> bool:
        return self.stake > 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class DevnetPlan:
    nodes: tuple[NodePlan, ...]
    hostile: tuple[str, ...]
    """Hostile patch file names the adversary submits."""
    profile: str
    manifest: str
    pairs: int
    """Paired benchmark runs per verification (the verifiers' ``verifier.pairs``; 0: the
    target's)."""
    byzantine: str

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def proposers(self) -> tuple[NodePlan, ...]:
        return tuple(n for n in self.nodes if "proposer" in n.roles)

    @property
    def validators(self) -> tuple[NodePlan, ...]:
        return tuple(n for n in self.nodes if n.is_validator)


# --- patches ---------------------------------------------------------------------------------


def patch_chains(patches: Sequence[PatchFile]) -> list[list[PatchFile]]:
    """Group patches by ``Depends-On`` into trees, each in application order (pure).

    A group starts at a patch that depends on nothing in the set and holds everything that
    stacks on it, parents before children (siblings by name). A proposer applies a
    ``Depends-On`` patch only onto the commit its own dependency became, so a whole group must
    go to one proposer.
    """
    by_name = {p.name: p for p in patches}
    children: dict[str, list[PatchFile]] = {}
    roots = []
    for patch in sorted(patches, key=lambda p: p.name):
        parent = patch.depends_on
        if parent and parent in by_name:
            children.setdefault(parent, []).append(patch)
        else:
            roots.append(patch)
    groups = []
    for root in roots:
        group, stack = [], [root]
        while stack:
            patch = stack.pop()
            group.append(patch)
            stack.extend(reversed(children.get(patch.name, [])))
        groups.append(group)
    return groups


def split_patches(patches: Sequence[PatchFile], proposers: int) -> list[list[PatchFile]]:
    """Share whole ``Depends-On`` groups out over ``proposers``, largest first, each to whoever
    has least so far (pure). With the example's good patches and two proposers: one proposer
    takes the chain 02 → 03 → 04 → 05, the other 01 (a sibling of 02 on the genesis)."""
    if proposers < 1:
        raise DevnetError("a devnet needs at least one proposer")
    shares: list[list[PatchFile]] = [[] for _ in range(proposers)]
    for group in sorted(patch_chains(patches), key=lambda c: (-len(c), c[0].name)):
        min(shares, key=len).extend(group)
    return shares


def read_patches(directory: Path) -> list[PatchFile]:
    return [read_patch(p) for p in sorted(directory.glob("*.patch"))]


def default_hostile(profile: str, available: Iterable[str]) -> tuple[str, ...]:
    have = set(available)
    skip = set(AVX2_ONLY_HOSTILE) if profile != "avx2" else set()
    return tuple(n for n in DEFAULT_HOSTILE if n in have and n not in skip)


def select_hostile(choice: str, profile: str, available: Sequence[str]) -> tuple[str, ...]:
    """``default``, ``all``, ``none``, or a comma-separated list of file names or numbers."""
    names = sorted(available)
    if choice == "default":
        return default_hostile(profile, names)
    if choice == "all":
        return tuple(names)
    if choice in ("none", ""):
        return ()
    chosen = []
    for item in (s.strip() for s in choice.split(",") if s.strip()):
        matches = [n for n in names if n == item or n.split("-", 1)[0] == item.zfill(2)]
        if len(matches) != 1:
            raise DevnetError(f"--hostile: {item!r} names no hostile patch (have: "
                              f"{', '.join(names)})")
        chosen.append(matches[0])
    return tuple(dict.fromkeys(chosen))


# --- the plan --------------------------------------------------------------------------------


def free_ports() -> Iterator[int]:
    """Distinct free TCP ports on 127.0.0.1 (the kernel's choice; each checked free now)."""
    seen: set[int] = set()
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in seen:
            seen.add(port)
            yield port


def plan_devnet(good: Sequence[PatchFile], hostile: Sequence[str], *, profile: str,
                manifest: str, pairs: int, byzantine: str, stake: int,
                ports: Iterator[int]) -> DevnetPlan:
    """Who runs what, on which ports (pure given ``ports``)."""
    if byzantine not in BYZANTINE_MODES:
        raise DevnetError(f"--byzantine must be one of {', '.join(BYZANTINE_MODES)}, "
                          f"not {byzantine!r}")
    shares = split_patches(good, len(PROPOSERS))
    nodes = [NodePlan(name=name, roles=("verifier",), p2p_port=next(ports),
                      http_port=next(ports), stake=stake) for name in HONEST_VERIFIERS]
    nodes.append(NodePlan(name=BYZANTINE, roles=("verifier",), p2p_port=next(ports),
                          http_port=next(ports), stake=stake, byzantine=byzantine))
    for name, share in zip(PROPOSERS, shares, strict=True):
        nodes.append(NodePlan(name=name, roles=("proposer",), p2p_port=next(ports),
                              http_port=next(ports), patches=tuple(p.name for p in share)))
    return DevnetPlan(nodes=tuple(nodes), hostile=tuple(hostile), profile=profile,
                      manifest=manifest, pairs=pairs, byzantine=byzantine)


def assign_cpus(plan: DevnetPlan, cpus: Sequence[int]) -> dict[str, int]:
    """One CPU per node (pure).

    Why pin at all: on the machine this demo was built on, the two vCPUs differed by up to 40%
    in speed at any moment, and the scheduler moves a fresh benchmark process to either; a
    paired A/B whose two runs land on different CPUs then measures the CPUs, not the code
    (pair ratios from 0.67 to 1.48 for a 6% improvement). Pinned, each node's benchmarks — both
    runs of every pair — run on one CPU (its children inherit the affinity), and the target's pairs
    resolve a 6% change within ±2–3%.

    Who goes where: the proposer with the most patches gets a CPU of its own when there are
    two or more. It is the one measurement the demo cannot lose: a patch it wrongly discards
    takes every patch stacked on it out of the run, while a commit still passes with one of
    three verifiers' verdicts lost to noise. The other nodes spread over the other CPUs by
    expected work (an honest verifier evaluates every commit, a proposer each of its patches,
    the Byzantine verifier nothing).
    """
    cpus = list(cpus)
    if not cpus:
        raise DevnetError("no CPU to run the nodes on")

    def weight(node: NodePlan) -> int:
        if node.byzantine:
            return 0
        return 1 + len(node.patches) if "proposer" in node.roles else 2

    ordered = sorted(plan.nodes, key=lambda n: -weight(n))  # stable: plan order on ties
    out: dict[str, int] = {}
    if len(cpus) > 1 and ordered and "proposer" in ordered[0].roles:
        out[ordered[0].name] = cpus.pop(0)
        ordered = ordered[1:]
    load = dict.fromkeys(cpus, 0)
    for node in ordered:
        cpu = min(load, key=lambda c: (load[c], c))
        out[node.name] = cpu
        load[cpu] += weight(node)
    return {node.name: out[node.name] for node in plan.nodes}


def multiaddr(node: NodePlan, peer_id: str) -> str:
    return f"/ip4/127.0.0.1/tcp/{node.p2p_port}/p2p/{peer_id}"


def node_config(plan: DevnetPlan, node: NodePlan, peer_ids: Mapping[str, str],
                target_cid: str, node_dir: Path) -> Config:
    """The config of one node (pure): every node bootstraps to the ones started before it, so
    the first is everyone's entry point and the rest mesh as they come up."""
    config = Config()
    config.node.roles = list(node.roles)
    config.node.name = node.name
    config.network.listen = [f"/ip4/127.0.0.1/tcp/{node.p2p_port}"]
    earlier = plan.nodes[:plan.nodes.index(node)]
    config.network.bootstrap = [multiaddr(n, peer_ids[n.name]) for n in earlier]
    config.http.port = node.http_port
    config.targets.follow = [target_cid]
    config.targets.genesis_files = [GENESIS_FILE]
    config.verifier.build_cache = str(node_dir.parent / BUILD_CACHE)  # the devnet directory's
    if "verifier" in node.roles:
        config.verifier.pairs = plan.pairs
        config.verifier.byzantine = node.byzantine
    if "proposer" in node.roles:
        config.proposer.strategy = "patches"
        config.proposer.patches_dir = str(node_dir / PATCHES_DIR)
    return config


# --- writing it out --------------------------------------------------------------------------


@dataclass
class Layout:
    """What ``write_layout`` wrote: the devnet directory and where each node lives."""

    root: Path
    plan: DevnetPlan
    target: str
    peer_ids: dict[str, str] = field(default_factory=dict)
    public_keys: dict[str, str] = field(default_factory=dict)
    cpus: dict[str, int] = field(default_factory=dict)
    """Node name -> the CPU it is pinned to (``assign_cpus``); empty: not pinned."""

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def log_path(self, name: str) -> Path:
        return self.root / LOG_DIR / f"{name}.log"


def prepare_dir(root: Path) -> None:
    """Start from an empty devnet directory: one a previous devnet left is cleared but for its
    build cache, anything else refused (the devnet never deletes what it did not make)."""
    if root.exists() and any(root.iterdir()):
        if not (root / MANIFEST_NAME).exists():
            raise DevnetError(f"{root} exists and is not a devnet directory (no {MANIFEST_NAME})"
                              ": choose another --dir, or remove it yourself")
        for path in root.iterdir():
            if path.name == BUILD_CACHE:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text("{}\n")  # marks the directory as a devnet's at once


def write_layout(root: Path, plan: DevnetPlan, keys: Mapping[str, SigningKey],
                 genesis_bytes: bytes, target_cid: str, *,
                 patches_dir: Path = EXAMPLE / "patches" / "good",
                 cpus: Mapping[str, int] | None = None) -> Layout:
    """Write every node's data directory and ``devnet.json`` under ``root`` (prepared)."""
    layout = Layout(root=root, plan=plan, target=target_cid,
                    peer_ids={n: k.peer_id for n, k in keys.items()},
                    public_keys={n: k.public_key.hex() for n, k in keys.items()},
                    cpus=dict(cpus or {}))
    (root / LOG_DIR).mkdir(exist_ok=True)
    (root / BUILD_CACHE).mkdir(exist_ok=True)  # kept across runs (prepare_dir)
    (root / GENESIS_FILE).write_bytes(genesis_bytes)
    keystore_log = logging.getLogger("node.keystore")
    level = keystore_log.level
    keystore_log.setLevel(logging.ERROR)  # one warning for all keys, said by the caller
    try:
        for name, key in keys.items():
            create_key(root / name / "keys", None, dev_unencrypted=True, key=key)
    finally:
        keystore_log.setLevel(level)
    for node in plan.nodes:
        node_dir = layout.node_dir(node.name)
        (node_dir / GENESIS_FILE).write_bytes(genesis_bytes)
        if node.patches:
            (node_dir / PATCHES_DIR).mkdir()
            for name in node.patches:
                shutil.copyfile(patches_dir / name, node_dir / PATCHES_DIR / name)
        write_config(node_dir, node_config(plan, node, layout.peer_ids, target_cid, node_dir))
    write_manifest(layout)
    return layout


def manifest_data(layout: Layout) -> dict:
    plan = layout.plan
    return {
        "target": layout.target,
        "profile": plan.profile,
        "manifest": plan.manifest,
        "pairs": plan.pairs,
        "byzantine": plan.byzantine,
        "hostile": list(plan.hostile),
        "adversary": {"public_key": layout.public_keys.get(ADVERSARY, ""),
                      "dir": str(layout.node_dir(ADVERSARY))},
        "nodes": [
            {**asdict(node), "roles": list(node.roles), "patches": list(node.patches),
             "http_url": node.http_url, "peer_id": layout.peer_ids[node.name],
             "public_key": layout.public_keys[node.name],
             "dir": str(layout.node_dir(node.name)), "log": str(layout.log_path(node.name)),
             "cpu": layout.cpus.get(node.name)}
            for node in plan.nodes
        ],
    }


def write_manifest(layout: Layout) -> Path:
    path = layout.root / MANIFEST_NAME
    path.write_text(json.dumps(manifest_data(layout), indent=2) + "\n")
    return path
