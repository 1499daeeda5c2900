"""Scope: what a commit may change, and the workspace a commit stands for (pure).

docs/PROTOCOL.md §5: a commit's tree holds the complete content of the target's writable scope;
its workspace is the target's base tree with every writable path removed and the commit tree's
files added. :func:`check_scope` lists every way a workspace breaks the rules: a path changed
(or added, or deleted) outside the writable globs, a symlink, a special file, a path that could
escape the workspace, an oversize file. The proposer runs it on its working copy before it
publishes; the verifier runs it on the workspace a commit implies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from protocol.cid import CID
from protocol.objects import Tree, TreeEntry
from protocol.paths import match_any, path_problem

FILE = "file"
SYMLINK = "symlink"
SPECIAL = "special"

OUTSIDE_SCOPE = "outside_scope"
DELETED_OUTSIDE_SCOPE = "deleted_outside_scope"
FORBIDDEN_PATH = "forbidden_path"
SYMLINK_ENTRY = "symlink"
SPECIAL_FILE = "special_file"
OVERSIZE = "oversize"


@dataclass(frozen=True)
class Entry:
    """One thing found in a workspace: a regular file (with its blob) or something forbidden."""

    kind: str
    size: int = 0
    blob: CID | None = None
    mode: int = 0o644
    detail: str = ""
    """For a symlink, where it points; for a special file, what it is."""


@dataclass(frozen=True)
class Violation:
    path: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule} ({self.detail})"


def check_scope(
    base: Mapping[str, TreeEntry],
    workspace: Mapping[str, Entry],
    writable: Sequence[str],
    max_file_bytes: int,
) -> list[Violation]:
    """Every violation of the scope rules by ``workspace`` relative to the target's ``base``."""
    violations: list[Violation] = []
    for path in sorted(workspace):
        entry = workspace[path]
        problem = path_problem(path)
        if problem:
            violations.append(Violation(repr(path), FORBIDDEN_PATH, problem))
            continue
        if entry.kind == SYMLINK:
            violations.append(Violation(path, SYMLINK_ENTRY, f"points to {entry.detail!r}"))
            continue
        if entry.kind != FILE:
            violations.append(Violation(path, SPECIAL_FILE, entry.detail or entry.kind))
            continue
        if entry.size > max_file_bytes:
            violations.append(Violation(path, OVERSIZE,
                                        f"{entry.size} bytes, over {max_file_bytes}"))
        if not match_any(writable, path):
            before = base.get(path)
            if before is None:
                violations.append(Violation(path, OUTSIDE_SCOPE, "added outside the writable "
                                                                 "scope"))
            elif before.blob != entry.blob or before.mode != entry.mode:
                violations.append(Violation(path, OUTSIDE_SCOPE, "changed outside the writable "
                                                                 "scope"))
    for path in sorted(base.keys() - workspace.keys()):
        if not match_any(writable, path):
            violations.append(Violation(path, DELETED_OUTSIDE_SCOPE,
                                        "deleted outside the writable scope"))
    return violations


def writable_part(base: Tree | Mapping[str, TreeEntry], writable: Sequence[str]) -> Tree:
    """The tree of the writable scope of ``base``: the target's own tree as the genesis."""
    entries = base.entries if isinstance(base, Tree) else base
    return Tree({p: e for p, e in entries.items() if match_any(writable, p)})


def overlay(base: Tree | Mapping[str, TreeEntry], writable: Sequence[str],
            commit_tree: Tree | Mapping[str, TreeEntry]) -> dict[str, TreeEntry]:
    """The full workspace of a commit: base minus its writable paths, plus the commit tree."""
    base_entries = base.entries if isinstance(base, Tree) else base
    commit_entries = commit_tree.entries if isinstance(commit_tree, Tree) else commit_tree
    workspace = {p: e for p, e in base_entries.items() if not match_any(writable, p)}
    workspace.update(commit_entries)
    return dict(sorted(workspace.items(), key=lambda item: item[0].encode()))


def commit_tree_for(base: Mapping[str, TreeEntry], workspace: Mapping[str, Entry],
                    writable: Sequence[str]) -> Tree:
    """The tree a commit of ``workspace`` carries: its writable files, and any other file that
    differs from the base (so that an out-of-scope change is visible to every verifier instead
    of silently dropped). Non-files cannot be represented and are left to :func:`check_scope`.
    """
    entries = {}
    for path, entry in workspace.items():
        if entry.kind != FILE or entry.blob is None or path_problem(path):
            continue
        before = base.get(path)
        changed = before is None or before.blob != entry.blob or before.mode != entry.mode
        if match_any(writable, path) or changed:
            entries[path] = TreeEntry(entry.blob, entry.mode)
    return Tree(entries)


def tree_entries(entries: Mapping[str, TreeEntry], size_of: Callable[[CID], int | None]
                 ) -> dict[str, Entry]:
    """A tree's entries as workspace entries (sizes looked up, unknown blobs as size 0)."""
    return {p: Entry(FILE, size_of(e.blob) or 0, e.blob, e.mode) for p, e in entries.items()}
