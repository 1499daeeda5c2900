"""What the pipeline evaluates: a workspace (every file, by content) and how it was obtained.

A workspace comes either from the DAG (a commit's tree overlaid on the target's base tree) or
from a directory on disk (a proposer's working copy, or the base with a patch applied). Either
way the pipeline sees the same thing: the full file map, a way to read blobs, and the entries a
scope check must look at (a directory may hold symlinks or special files that no tree can).
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dag.scope import Entry, commit_tree_for, overlay, tree_entries, writable_part
from dag.store import Store
from dag.workspace import ReadBlob, blob_reader, materialize, scan_directory
from protocol.cid import CID
from protocol.objects import Blob, Commit, Target, Tree, TreeEntry


class CandidateError(Exception):
    """A candidate that cannot even be assembled (a patch that does not apply, a missing
    object): not a verdict on the code, a refusal to evaluate it."""


@dataclass
class Workspace:
    """A complete workspace: ``entries`` maps every path to its blob; ``scan`` holds what a
    scope check must see (for trees: the same files; for directories: everything found)."""

    entries: dict[str, TreeEntry]
    read_blob: ReadBlob
    scan: dict[str, Entry]
    commit_tree: Tree
    """The writable-scope tree a commit of this workspace carries (docs/PROTOCOL.md §5)."""
    label: str = ""
    blobs: Mapping[CID, Blob] = field(default_factory=dict)

    @cached_property
    def tree_cid(self) -> CID:
        """Names the whole workspace: the key of its build cache entry."""
        return Tree(self.entries).cid

    def materialize(self, dest: Path) -> None:
        materialize(self.entries, self.read_blob, dest)


def workspace_from_tree(target: Target, base_tree: Tree, commit_tree: Tree | None,
                        read_blob: ReadBlob, *, size_of=None, label: str = "") -> Workspace:
    """The workspace of a commit tree (None: the target itself, the genesis)."""
    tree = commit_tree if commit_tree is not None else writable_part(base_tree, target.writable)
    entries = overlay(base_tree, target.writable, tree)
    size_of = size_of or (lambda cid: len(read_blob(cid) or b""))
    return Workspace(entries=entries, read_blob=read_blob,
                     scan=tree_entries(entries, size_of), commit_tree=tree, label=label)


def workspace_from_store(store: Store, target: Target, commit: CID) -> Workspace:
    """The workspace of ``commit`` (or of the target when ``commit`` is the target's CID)."""
    base_tree = store.get(target.base_tree)
    if not isinstance(base_tree, Tree):
        raise CandidateError(f"base tree {target.base_tree} of {target.name} is not available")
    commit_tree = None
    if commit != target.cid:
        obj = store.get(commit)
        if not isinstance(obj, Commit):
            raise CandidateError(f"commit {commit} is not available")
        commit_tree = store.get(obj.tree)
        if not isinstance(commit_tree, Tree):
            raise CandidateError(f"tree {obj.tree} of commit {commit} is not available")
    return workspace_from_tree(target, base_tree, commit_tree, store.get_bytes,
                               size_of=store.blob_size, label=str(commit))


def workspace_from_directory(target: Target, base_tree: Tree, root: Path, *,
                             exclude: tuple[str, ...] = ("target", "target/**"),
                             label: str = "") -> Workspace:
    """The workspace a proposer's working copy stands for, as a commit of it would carry it."""
    scan, blobs = scan_directory(root, exclude)
    commit_tree = commit_tree_for(base_tree.entries, scan, target.writable)
    entries = overlay(base_tree, target.writable, commit_tree)
    return Workspace(entries=entries, read_blob=blob_reader(blobs), scan=scan,
                     commit_tree=commit_tree, label=label or str(root), blobs=blobs)


# --- patches ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatchFile:
    """A unified diff with an RFC 822-style header (Title, Depends-On, Expect…), as in
    examples/plonky3/patches: ``git apply`` ignores the header."""

    path: Path
    headers: Mapping[str, str]
    text: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        return self.headers.get("title", self.path.stem)

    @property
    def depends_on(self) -> str | None:
        return self.headers.get("depends-on") or None

    @property
    def expect(self) -> str | None:
        return self.headers.get("expect") or None


def read_patch(path: Path) -> PatchFile:
    text = Path(path).read_text()
    head = text.split("\ndiff --git ", 1)[0] if not text.startswith("diff --git ") else ""
    message = email.parser.HeaderParser().parsestr(head)
    headers = {k.lower(): v.split("#", 1)[0].strip() for k, v in message.items()}
    return PatchFile(path=Path(path), headers=headers, text=text)


_GIT_REPOSITORY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
                       "GIT_OBJECT_DIRECTORY")
"""Variables that would point ``git apply`` at a repository (`apply_patch` says why not)."""


def apply_patch(patch: PatchFile | str, directory: Path) -> None:
    """Apply a patch to ``directory`` with ``git apply`` (symlinks and modes included).

    Git must not find a repository around ``directory``: inside one, ``git apply`` takes the
    patch's paths from the repository's top and silently skips every file outside the current
    directory, so a patch applied in a work directory under a clone (``make demo`` runs in
    ``./devnet``) changed nothing and reported success.
    """
    text = patch.text if isinstance(patch, PatchFile) else patch
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REPOSITORY_ENV}
    env["GIT_CEILING_DIRECTORIES"] = str(Path(directory).resolve().parent)
    result = subprocess.run(["git", "apply", "--whitespace=nowarn", "-p1", "-"], input=text,
                            text=True, capture_output=True, cwd=directory, timeout=60, env=env)
    if result.returncode != 0:
        name = patch.name if isinstance(patch, PatchFile) else "patch"
        raise CandidateError(f"{name} does not apply: {result.stderr.strip()[:500]}")


def workspace_with_patch(target: Target, base_tree: Tree, parent: Workspace,
                         patch: PatchFile | str, scratch: Path | None = None) -> Workspace:
    """``parent`` with ``patch`` applied, as a proposer would turn it into a commit."""
    label = patch.name if isinstance(patch, PatchFile) else "patch"
    with tempfile.TemporaryDirectory(prefix="poi-patch-", dir=scratch) as tmp:
        root = Path(tmp) / "ws"
        parent.materialize(root)
        apply_patch(patch, root)
        return workspace_from_directory(target, base_tree, root, label=label)
