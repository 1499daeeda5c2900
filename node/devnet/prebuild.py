"""Fill the devnet's shared build cache before any node starts.

Why: the machine this demo is meant for has two cores. A release build of the example keeps
one or both busy for 5–10 s, and while the network runs, builds of newly arrived commits would
overlap the paired benchmarks on the other core — the benchmark lock keeps benchmarks apart
from each other, not from builds — and turn a real 5% speed-up into a wide interval that says
``not_improved``. Every workspace the devnet will see is known in advance (the genesis, each
good patch stacked on its ``Depends-On`` chain, each hostile patch on the genesis), so the
devnet builds them first, one after another, with the same pipeline, sandbox and cache keys
(tree, toolchain, profile) the nodes use. During the run every build is then a cache hit, and
the nodes' CPU time goes to gates and benchmarks. Workspaces that break the scope rules are not
built (no verifier would build them). A rerun in the same devnet directory reuses the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dag.manifest import Genesis
from dag.scope import check_scope
from dag.workspace import blob_reader
from verifier.candidates import (
    CandidateError,
    PatchFile,
    Workspace,
    workspace_from_tree,
    workspace_with_patch,
)
from verifier.hardware import detect_toolchain
from verifier.pipeline import Pipeline

from .errors import DevnetError
from .layout import patch_chains


@dataclass(frozen=True)
class BuildItem:
    label: str
    workspace: Workspace


def genesis_workspace(genesis: Genesis) -> Workspace:
    return workspace_from_tree(genesis.target, genesis.base_tree, None,
                               blob_reader(genesis.blobs), label="genesis")


def apply_patches(genesis: Genesis, good: Sequence[PatchFile], hostile: Iterable[PatchFile],
                  scratch: Path) -> dict[str, Workspace]:
    """By name: the genesis workspace (``"genesis"``), each good patch on the workspace of its
    ``Depends-On`` (the genesis when it has none), each hostile patch on the genesis. Each is
    what a commit of it carries (regular files only); the devnet builds them and the adversary
    signs the hostile ones."""
    root = genesis_workspace(genesis)
    applied = {"genesis": root}
    for group in patch_chains(good):  # parents before children
        for patch in group:
            parent = applied.get(patch.depends_on or "", root)
            applied[patch.name] = _apply(genesis, parent, patch, scratch)
    if len(applied) != len(good) + 1:
        raise DevnetError("the good patches' Depends-On headers form a cycle")
    for patch in hostile:
        applied[patch.name] = _apply(genesis, root, patch, scratch)
    return applied


def build_items(genesis: Genesis, applied: Mapping[str, Workspace]) -> list[BuildItem]:
    """What the verifiers will build: in scope only (no verifier builds the others), each tree
    once."""
    target, base = genesis.target, genesis.base_tree
    seen, unique = set(), []
    for label, ws in applied.items():
        if ws.tree_cid in seen or check_scope(base.entries, ws.scan, target.writable,
                                              target.limits.max_file_bytes):
            continue
        seen.add(ws.tree_cid)
        unique.append(BuildItem(label, ws))
    return unique


def _apply(genesis: Genesis, parent: Workspace, patch: PatchFile, scratch: Path) -> Workspace:
    try:
        ws = workspace_with_patch(genesis.target, genesis.base_tree, parent, patch,
                                  scratch=scratch)
    except CandidateError as exc:
        raise DevnetError(f"example patch {patch.name}: {exc}") from None
    # What a commit of it carries, and so what a verifier builds: regular files only.
    return workspace_from_tree(genesis.target, genesis.base_tree, ws.commit_tree, ws.read_blob,
                               label=patch.name)


def prebuild(genesis: Genesis, items: Sequence[BuildItem], work_dir: Path, build_cache: Path,
             *, on_build: Callable[[int, int, str, float, bool], None] | None = None) -> int:
    """Build every item into ``build_cache`` (the one every node's config names); returns how
    many were built now (the rest were cached). ``on_build(done, total, label, seconds,
    cached)``."""
    repo = Path(__file__).resolve().parents[2]  # the nodes' working directory (launch.py)
    pipeline = Pipeline(genesis.target, genesis.base_tree, work_dir, sandbox=True,
                        build_cache=build_cache, toolchain=detect_toolchain(repo))
    built = 0
    for index, item in enumerate(items, 1):
        result = pipeline.build(item.workspace)
        if not result.cached:
            built += 1
        if on_build:
            on_build(index, len(items), item.label, result.wall_s, result.cached)
        if item.label == "genesis" and result.status != "ok":
            raise DevnetError(f"the example target itself does not build here "
                              f"({result.status}): {result.detail}")
    return built
