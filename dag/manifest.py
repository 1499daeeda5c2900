"""Target manifests: a TOML file plus a workspace directory make a genesis ``Target``.

A manifest (``examples/plonky3/targets/*.toml``) says how to build, gate and benchmark a
workspace, what a commit may change, and the statistical parameters; the workspace directory
gives the base tree. What only a network can decide — the genesis validators and their stakes,
the genesis time, the epoch length, the quorum — is passed in by whoever creates the network.
Every field a manifest gets wrong is named in the error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.cid import CID
from protocol.errors import ValidationError
from protocol.objects import Blob, Commands, Limits, Stats, Target, Tree, Validator
from protocol.paths import glob_problem

from .workspace import tree_from_directory

DEFAULT_BASE_EXCLUDE = ("target", "target/**", "patches/**", "targets/**", "README.md",
                        ".git/**")
"""What is not part of a workspace's base tree unless the manifest says otherwise: build output,
candidate patches, the manifests themselves, documentation."""

_TOP = {"name", "profile", "description", "writable", "metric", "direction", "commands", "stats",
        "limits", "base_exclude"}


class ManifestError(Exception):
    """A manifest that cannot become a target; the message names the file and the field."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    profile: str
    description: str
    writable: tuple[str, ...]
    metric: str
    direction: str
    commands: Commands
    stats: Stats
    limits: Limits
    base_exclude: tuple[str, ...]

    @property
    def workspace(self) -> Path:
        """The workspace a manifest in ``<ws>/targets/`` describes."""
        return self.path.parent.parent


@dataclass(frozen=True)
class Genesis:
    target: Target
    base_tree: Tree
    blobs: Mapping[CID, Blob]

    def objects(self) -> list[Tree | Blob | Target]:
        """Everything a store needs to hold this genesis, dependencies first."""
        return [*self.blobs.values(), self.base_tree, self.target]


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ManifestError(f"{path}: unknown key(s) {', '.join(unknown)}")
    writable = _req(path, data, "writable")
    if not isinstance(writable, list):
        raise ManifestError(f"{path}: writable must be a list of globs")
    for glob in writable:
        problem = glob_problem(glob)
        if problem:
            raise ManifestError(f"{path}: writable: {problem}")
    try:
        commands = _table(path, data, "commands")
        return Manifest(
            path=path,
            name=_req(path, data, "name"),
            profile=_req(path, data, "profile"),
            description=data.get("description", ""),
            writable=tuple(sorted(_req(path, data, "writable"), key=str.encode)),
            metric=_req(path, data, "metric"),
            direction=data.get("direction", "lower"),
            commands=Commands(**{k: tuple(v) for k, v in commands.items()}),
            stats=Stats(**_table(path, data, "stats", required=False)),
            limits=Limits(**_table(path, data, "limits", required=False)),
            base_exclude=tuple(data.get("base_exclude", DEFAULT_BASE_EXCLUDE)),
        )
    except ValidationError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    except TypeError as exc:  # unknown or missing keys in a table
        raise ManifestError(f"{path}: {exc}") from None


def _req(path: Path, data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise ManifestError(f"{path}: missing key {key!r}")
    return data[key]


def _table(path: Path, data: Mapping[str, Any], key: str, required: bool = True
           ) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: [{key}] must be a table")
    return value


def make_genesis(
    manifest: Manifest,
    validators: Iterable[tuple[bytes, int]],
    *,
    genesis_time_ms: int,
    epoch_seconds: int = 60,
    quorum_ppm: int | None = None,
    workspace: Path | None = None,
) -> Genesis:
    """The target (and its base tree and blobs) for ``manifest`` with these genesis stakes."""
    root = workspace or manifest.workspace
    base_tree, blobs = tree_from_directory(root, exclude=manifest.base_exclude)
    extra = {} if quorum_ppm is None else {"quorum_ppm": quorum_ppm}
    try:
        target = Target(
            name=manifest.name, description=manifest.description, base_tree=base_tree.cid,
            writable=manifest.writable, metric=manifest.metric, direction=manifest.direction,
            profile=manifest.profile, commands=manifest.commands, stats=manifest.stats,
            limits=manifest.limits,
            validators=tuple(sorted((Validator(k, s) for k, s in validators),
                                    key=lambda v: v.key)),
            genesis_time_ms=genesis_time_ms, epoch_seconds=epoch_seconds, **extra,
        )
    except ValidationError as exc:
        raise ManifestError(f"{manifest.path}: {exc}") from None
    return Genesis(target=target, base_tree=base_tree, blobs=blobs)
