"""Trees: a workspace's files as path → (blob CID, mode) (docs/PROTOCOL.md §Trees)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from ..cid import CID, CODEC_RAW
from ..constants import FILE_MODES, MAX_TREE_ENTRIES
from ..paths import path_problem
from ._schema import check_cid, check_int, fail, wire_cid, wire_list
from .base import PoiObject


@dataclass(frozen=True)
class TreeEntry:
    blob: CID
    mode: int = 0o644

    @property
    def executable(self) -> bool:
        return self.mode == 0o755


@dataclass(frozen=True)
class Tree(PoiObject):
    """A sorted map of regular files. On the wire: ``entries: {path: [blob_cid, mode]}``.

    Only regular files exist in a tree (no symlinks, devices or directories as entries), paths
    obey :func:`protocol.paths.path_problem`, and no path may be both a file and a directory
    (``a`` and ``a/b``), so every tree materialises the same way everywhere.
    """

    TYPE: ClassVar[str] = "tree"
    FIELDS: ClassVar[tuple[str, ...]] = ("entries",)

    entries: Mapping[str, TreeEntry]

    def __post_init__(self) -> None:
        if not isinstance(self.entries, Mapping):
            raise fail("tree.entries", f"expected a mapping, got {type(self.entries).__name__}")
        if len(self.entries) > MAX_TREE_ENTRIES:
            raise fail("tree.entries", f"{len(self.entries)} entries is over {MAX_TREE_ENTRIES}")
        ordered = sorted(self.entries, key=lambda p: p.encode("utf-8") if isinstance(p, str)
                         else b"")
        for path in ordered:
            problem = path_problem(path)
            if problem:
                raise fail("tree.entries", problem)
            entry = self.entries[path]
            if not isinstance(entry, TreeEntry):
                raise fail(f"tree.entries[{path!r}]", "expected a TreeEntry")
            check_cid(f"tree.entries[{path!r}].blob", entry.blob, CODEC_RAW)
            mode = check_int(f"tree.entries[{path!r}].mode", entry.mode, 0, 0o7777)
            if mode not in FILE_MODES:
                raise fail(f"tree.entries[{path!r}].mode",
                           f"mode {mode:o} is not a regular file mode (644 or 755)")
        # A file may not also be a directory, or materialising the tree would be ambiguous.
        paths = set(ordered)
        for path in ordered:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                prefix = "/".join(parts[:depth])
                if prefix in paths:
                    raise fail("tree.entries", f"{prefix!r} is both a file and a directory")
        object.__setattr__(self, "entries", MappingProxyType(
            {path: self.entries[path] for path in ordered}))

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def body(self) -> dict[str, Any]:
        return {"entries": {p: [bytes(e.blob), e.mode] for p, e in self.entries.items()}}

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Tree:
        raw = wire["entries"]
        if not isinstance(raw, dict):
            raise fail("tree.entries", f"expected a map, got {type(raw).__name__}")
        entries = {}
        for path, value in raw.items():
            where = f"tree.entries[{path!r}]"
            pair = wire_list(where, value)
            if len(pair) != 2:
                raise fail(where, "expected [blob CID, mode]")
            entries[path] = TreeEntry(blob=wire_cid(f"{where}.blob", pair[0]), mode=pair[1])
        return cls(entries=entries)

    def __hash__(self) -> int:
        return hash(self.cid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tree) and other.cid == self.cid

