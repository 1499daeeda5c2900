"""Local evaluation without a network: ``poi verify PATCH --target MANIFEST``.

A patch is evaluated against the workspace it stacks on: the target's baseline, or the chain of
patches its ``Depends-On`` header names (looked up beside it), so a reviewer can check any patch
of examples/plonky3/patches exactly as a verifier would, sandbox and statistics included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dag.manifest import Genesis, load_manifest, make_genesis
from dag.workspace import blob_reader

from .candidates import (
    CandidateError,
    PatchFile,
    Workspace,
    read_patch,
    workspace_from_tree,
    workspace_with_patch,
)
from .pipeline import Evaluation, Pipeline, Progress

LOCAL_VALIDATOR = (bytes(32), 1)
"""A placeholder genesis stake: a local evaluation has no network, so nobody's stake matters."""


@dataclass
class LocalResult:
    evaluation: Evaluation
    parent_label: str
    candidate_label: str
    genesis: Genesis


def patch_chain(patch: Path) -> list[PatchFile]:
    """The patches ``patch`` depends on (oldest first), then ``patch`` itself."""
    chain = [read_patch(patch)]
    seen = {chain[0].path.resolve()}
    while chain[0].depends_on:
        parent = chain[0].path.parent / chain[0].depends_on
        if not parent.exists():
            raise CandidateError(f"{chain[0].name} depends on {chain[0].depends_on}, which is "
                                 f"not in {chain[0].path.parent}")
        if parent.resolve() in seen:
            raise CandidateError(f"patch dependencies form a cycle at {parent.name}")
        seen.add(parent.resolve())
        chain.insert(0, read_patch(parent))
    return chain


def evaluate_patch_file(manifest_path: Path, patch: Path, *, work_dir: Path,
                        pairs: int | None = None, sandbox: bool = True,
                        on_baseline: bool = False, bench_lock: Path | None = None,
                        progress: Progress | None = None) -> LocalResult:
    """Evaluate ``patch`` against its parent workspace on this machine."""
    genesis = make_genesis(load_manifest(manifest_path), [LOCAL_VALIDATOR], genesis_time_ms=0)
    target = genesis.target
    kwargs = {} if bench_lock is None else {"bench_lock": bench_lock}
    pipeline = Pipeline(target, genesis.base_tree, work_dir, sandbox=sandbox,
                        progress=progress, **kwargs)
    chain = [read_patch(patch)] if on_baseline else patch_chain(patch)
    parent: Workspace = workspace_from_tree(target, genesis.base_tree, None,
                                            blob_reader(genesis.blobs), label="baseline")
    scratch = Path(work_dir)
    for link in chain[:-1]:
        parent = workspace_with_patch(target, genesis.base_tree, parent, link, scratch=scratch)
    candidate = workspace_with_patch(target, genesis.base_tree, parent, chain[-1],
                                     scratch=scratch)
    evaluation = pipeline.evaluate(parent, candidate, pairs=pairs)
    return LocalResult(evaluation, parent.label, candidate.label, genesis)
