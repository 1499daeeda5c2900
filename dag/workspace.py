"""Workspaces on disk: scan a directory into entries and blobs, build trees, materialise a
commit's workspace into a fresh directory, and render the diff between two trees.

The scan never follows symlinks and never reads special files: it reports them, so the scope
check can refuse them. Materialising checks every blob against its CID as it writes, so a
corrupt store can never produce a workspace that differs from what the commit names.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from protocol.cid import CID
from protocol.constants import MAX_BLOB_BYTES
from protocol.objects import Blob, Target, Tree, TreeEntry
from protocol.paths import match_any, path_problem

from .scope import FILE, SPECIAL, SYMLINK, Entry, check_scope, overlay, writable_part

ReadBlob = Callable[[CID], bytes | None]


class WorkspaceError(Exception):
    """A workspace cannot be built or materialised; the message says which path and why."""


def scan_directory(root: Path, exclude: Iterable[str] = ()) -> tuple[dict[str, Entry],
                                                                    dict[CID, Blob]]:
    """Every entry under ``root`` (paths relative, '/'-separated) and the blobs of its files.

    ``exclude`` globs (e.g. ``target/**``) skip build output and other non-content. Files over
    the protocol's blob cap are reported with their size and no blob.
    """
    exclude = tuple(exclude)
    entries: dict[str, Entry] = {}
    blobs: dict[CID, Blob] = {}
    root = Path(root)

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            rel = prefix + item.name
            if match_any(exclude, rel) or match_any(exclude, rel + "/"):
                continue
            info = item.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = Entry(SYMLINK, detail=os.readlink(item.path))
            elif stat.S_ISDIR(info.st_mode):
                walk(Path(item.path), rel + "/")
            elif stat.S_ISREG(info.st_mode):
                mode = 0o755 if info.st_mode & 0o111 else 0o644
                if info.st_size > MAX_BLOB_BYTES:
                    entries[rel] = Entry(FILE, size=info.st_size, mode=mode)
                    continue
                blob = Blob(Path(item.path).read_bytes())
                blobs[blob.cid] = blob
                entries[rel] = Entry(FILE, size=len(blob.data), blob=blob.cid, mode=mode)
            else:
                entries[rel] = Entry(SPECIAL, detail=_kind_of(info.st_mode))

    walk(root, "")
    return entries, blobs


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def tree_from_directory(root: Path, exclude: Iterable[str] = ()) -> tuple[Tree, dict[CID, Blob]]:
    """The tree of every regular file under ``root``; refuses anything a tree cannot hold."""
    entries, blobs = scan_directory(root, exclude)
    problems = check_scope({}, entries, ("**",), MAX_BLOB_BYTES)
    if problems:
        raise WorkspaceError(f"{root}: " + "; ".join(str(p) for p in problems))
    return Tree({p: TreeEntry(e.blob, e.mode) for p, e in entries.items()}), blobs


def materialize(entries: Mapping[str, TreeEntry], read_blob: ReadBlob, dest: Path) -> None:
    """Write every file of ``entries`` under ``dest`` (which must be absent or empty)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise WorkspaceError(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    for path, entry in entries.items():
        problem = path_problem(path)
        if problem:  # unreachable for a validated Tree; kept because this writes to disk
            raise WorkspaceError(problem)
        data = read_blob(entry.blob)
        if data is None:
            raise WorkspaceError(f"{path}: blob {entry.blob} is not available")
        if not entry.blob.matches(data):
            raise WorkspaceError(f"{path}: blob bytes do not match {entry.blob}")
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, entry.mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(target, entry.mode)


def commit_workspace(target: Target, base_tree: Tree, commit_tree: Tree | None
                     ) -> dict[str, TreeEntry]:
    """The full file list of a commit (``commit_tree`` None: the target's own workspace)."""
    if commit_tree is None:
        return dict(base_tree.entries)
    return overlay(base_tree, target.writable, commit_tree)


def genesis_tree(target: Target, base_tree: Tree) -> Tree:
    """The tree the target stands for as the DAG's genesis: its writable part."""
    return writable_part(base_tree, target.writable)


def unified_diff(old: Mapping[str, TreeEntry], new: Mapping[str, TreeEntry],
                 read_blob: ReadBlob, context: int = 3) -> str:
    """A git-style unified diff from ``old`` to ``new`` (``git apply`` accepts it)."""
    out: list[str] = []
    for path in sorted(old.keys() | new.keys(), key=str.encode):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        out.append(f"diff --git a/{path} b/{path}\n")
        if a is None:
            out.append(f"new file mode 100{b.mode:o}\n")
        elif b is None:
            out.append(f"deleted file mode 100{a.mode:o}\n")
        elif a.mode != b.mode:
            out.append(f"old mode 100{a.mode:o}\nnew mode 100{b.mode:o}\n")
        if a is not None and b is not None and a.blob == b.blob:
            continue
        before = _text(read_blob, a)
        after = _text(read_blob, b)
        if before is None or after is None:
            out.append(f"Binary files a/{path} and b/{path} differ\n")
            continue
        lines = list(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            "/dev/null" if a is None else f"a/{path}", "/dev/null" if b is None else f"b/{path}",
            n=context))
        for line in lines:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _text(read_blob: ReadBlob, entry: TreeEntry | None) -> str | None:
    if entry is None:
        return ""
    data = read_blob(entry.blob)
    if data is None:
        raise WorkspaceError(f"blob {entry.blob} is not available")
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def blob_reader(blobs: Mapping[CID, Blob], fallback: ReadBlob | None = None) -> ReadBlob:
    """A ``read_blob`` over an in-memory map, falling back to e.g. a store."""
    def read(cid: CID) -> bytes | None:
        blob = blobs.get(cid)
        if blob is not None:
            return blob.data
        return fallback(cid) if fallback else None
    return read


__all__ = ["WorkspaceError", "blob_reader", "commit_workspace", "genesis_tree",
           "materialize", "scan_directory", "tree_from_directory", "unified_diff"]
