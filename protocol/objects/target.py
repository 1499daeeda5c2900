"""Targets: the genesis of an improvement DAG (docs/PROTOCOL.md §Target).

A target fixes everything verifiers must agree on before any commit exists: the workspace (base
tree), what a commit may change (writable globs), how to build, gate and benchmark it, the metric
and its direction, the hardware profile, the statistical parameters, and the genesis validators
with their stakes, epoch length and genesis time. Its CID names the DAG.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..cid import CID, CODEC_MSGPACK
from ..constants import (
    INT_MAX,
    MAX_BLOB_BYTES,
    MAX_COMMAND_ARGS,
    MAX_GLOBS,
    MAX_LABEL_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NAME_BYTES,
    MAX_VALIDATORS,
    PPM,
    PUBLIC_KEY_BYTES,
)
from ..paths import glob_problem
from ._schema import (
    check_bytes,
    check_cid,
    check_int,
    check_str,
    check_tuple,
    fail,
    nested,
    wire_cid,
    wire_list,
    wire_map,
)
from .base import PoiObject

DIRECTIONS = ("lower", "higher")
SEED_PLACEHOLDER = "{seed}"
"""Replaced in gate and bench commands by the 64-hex-digit seed the verifier draws."""


class _IntRecord:
    """A small record of bounded integers, encoded as a map."""

    RANGES: ClassVar[dict[str, tuple[int, int]]]
    WHERE: ClassVar[str]

    def __post_init__(self) -> None:
        for name, (lo, hi) in self.RANGES.items():
            check_int(f"{self.WHERE}.{name}", getattr(self, name), lo, hi)

    def to_wire(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.RANGES}

    @classmethod
    def from_wire(cls, wire: object) -> Self:
        checked = wire_map(cls.WHERE, wire, cls.RANGES)
        return cls(**checked)


@dataclass(frozen=True)
class Stats(_IntRecord):
    """Paired-benchmark parameters (DESIGN §5)."""

    WHERE: ClassVar[str] = "stats"
    RANGES: ClassVar[dict[str, tuple[int, int]]] = {
        "pairs": (2, 1000),
        "proposer_pairs": (1, 1000),
        "min_improvement_ppm": (0, PPM // 2),
        "confidence_ppm": (PPM // 2, PPM - 1),
    }

    pairs: int = 15
    proposer_pairs: int = 7
    min_improvement_ppm: int = 5000
    confidence_ppm: int = 950_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.proposer_pairs > self.pairs:
            raise fail("stats.proposer_pairs", "must not exceed pairs")


@dataclass(frozen=True)
class Limits(_IntRecord):
    """Sandbox limits for one evaluation step (DESIGN §5.2)."""

    WHERE: ClassVar[str] = "limits"
    RANGES: ClassVar[dict[str, tuple[int, int]]] = {
        "build_timeout_s": (1, 86_400),
        "gate_timeout_s": (1, 86_400),
        "bench_timeout_s": (1, 86_400),
        "memory_mb": (16, 1 << 20),
        "max_file_bytes": (1, MAX_BLOB_BYTES),
        "bench_cpus": (0, 1024),
    }

    build_timeout_s: int = 600
    gate_timeout_s: int = 120
    bench_timeout_s: int = 60
    memory_mb: int = 4096
    max_file_bytes: int = 1 << 20
    bench_cpus: int = 0
    """CPUs the benchmark phase runs on, the same ones for both runs of every pair: 0 = all
    the verifier's; n = its n lowest. A single-threaded benchmark wants 1: the CPUs of a shared
    VM differ in speed (by up to 40% on the quick bench here), which unpinned lands in the pair
    ratios as noise; a benchmark that measures all cores wants 0."""


@dataclass(frozen=True)
class Commands:
    """argv lists run from the workspace root; gate and bench must take the verifier's seed."""

    build: tuple[str, ...]
    gate: tuple[str, ...]
    bench: tuple[str, ...]

    NAMES: ClassVar[tuple[str, ...]] = ("build", "gate", "bench")

    def __post_init__(self) -> None:
        for name in self.NAMES:
            argv = getattr(self, name)
            check_tuple(f"commands.{name}", argv, min_len=1, max_len=MAX_COMMAND_ARGS,
                        item=lambda w, v: check_str(w, v, max_bytes=MAX_LABEL_BYTES))
        for name in ("gate", "bench"):
            if not any(SEED_PLACEHOLDER in arg for arg in getattr(self, name)):
                raise fail(f"commands.{name}", f"must contain {SEED_PLACEHOLDER}: the verifier's "
                                               "fresh seed is what makes the run unpredictable")

    def to_wire(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in self.NAMES}

    @classmethod
    def from_wire(cls, wire: object) -> Commands:
        checked = wire_map("commands", wire, cls.NAMES)
        return cls(**{n: tuple(wire_list(f"commands.{n}", checked[n])) for n in cls.NAMES})

    def with_seed(self, name: str, seed_hex: str) -> list[str]:
        """The argv of command ``name`` with the seed substituted."""
        return [arg.replace(SEED_PLACEHOLDER, seed_hex) for arg in getattr(self, name)]


@dataclass(frozen=True)
class Validator:
    key: bytes
    stake: int

    def __post_init__(self) -> None:
        check_bytes("validator.key", self.key, length=PUBLIC_KEY_BYTES)
        check_int("validator.stake", self.stake, 1, INT_MAX)

    def sort_key(self) -> bytes:
        return self.key


@dataclass(frozen=True)
class Target(PoiObject):
    TYPE: ClassVar[str] = "target"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "name", "description", "base_tree", "writable", "metric", "direction", "profile",
        "commands", "stats", "limits", "validators", "genesis_time_ms", "epoch_seconds",
        "quorum_ppm",
    )

    name: str
    base_tree: CID
    writable: tuple[str, ...]
    metric: str
    profile: str
    commands: Commands
    validators: tuple[Validator, ...]
    genesis_time_ms: int
    description: str = ""
    direction: str = "lower"
    stats: Stats = dataclasses.field(default_factory=Stats)
    limits: Limits = dataclasses.field(default_factory=Limits)
    epoch_seconds: int = 60
    quorum_ppm: int = 333_333
    """Least share of total active stake that must say improved (default 1/3, rounded down so
    that exactly one third of the stake meets it)."""

    def __post_init__(self) -> None:
        check_str("target.name", self.name, max_bytes=MAX_NAME_BYTES)
        check_str("target.description", self.description, max_bytes=MAX_MESSAGE_BYTES,
                  allow_empty=True)
        check_cid("target.base_tree", self.base_tree, CODEC_MSGPACK)
        check_tuple("target.writable", self.writable, min_len=1, max_len=MAX_GLOBS,
                    item=_check_glob, sorted_unique=True)
        check_str("target.metric", self.metric, max_bytes=MAX_LABEL_BYTES)
        check_str("target.direction", self.direction, max_bytes=8, choices=DIRECTIONS)
        check_str("target.profile", self.profile, max_bytes=MAX_LABEL_BYTES)
        for name, kind in (("commands", Commands), ("stats", Stats), ("limits", Limits)):
            if not isinstance(getattr(self, name), kind):
                raise fail(f"target.{name}", f"expected {kind.__name__}")
        check_tuple("target.validators", self.validators, min_len=1, max_len=MAX_VALIDATORS,
                    item=_check_validator, sorted_unique=True)
        check_int("target.genesis_time_ms", self.genesis_time_ms, 0, INT_MAX)
        check_int("target.epoch_seconds", self.epoch_seconds, 1, 1_000_000)
        check_int("target.quorum_ppm", self.quorum_ppm, 1, PPM)

    @property
    def total_genesis_stake(self) -> int:
        return sum(v.stake for v in self.validators)

    def epoch_at(self, time_ms: int) -> int:
        """The epoch a timestamp falls in (negative before genesis)."""
        return (time_ms - self.genesis_time_ms) // (self.epoch_seconds * 1000)

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "base_tree": bytes(self.base_tree),
            "writable": list(self.writable),
            "metric": self.metric,
            "direction": self.direction,
            "profile": self.profile,
            "commands": self.commands.to_wire(),
            "stats": self.stats.to_wire(),
            "limits": self.limits.to_wire(),
            "validators": [[v.key, v.stake] for v in self.validators],
            "genesis_time_ms": self.genesis_time_ms,
            "epoch_seconds": self.epoch_seconds,
            "quorum_ppm": self.quorum_ppm,
        }

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Target:
        validators = []
        for index, pair in enumerate(wire_list("target.validators", wire["validators"])):
            pair = wire_list(f"target.validators[{index}]", pair)
            if len(pair) != 2:
                raise fail(f"target.validators[{index}]", "expected [key, stake]")
            validators.append(nested(f"target.validators[{index}]",
                                     lambda p=pair: Validator(key=p[0], stake=p[1])))
        return cls(
            name=wire["name"],
            description=wire["description"],
            base_tree=wire_cid("target.base_tree", wire["base_tree"]),
            writable=tuple(wire_list("target.writable", wire["writable"])),
            metric=wire["metric"],
            direction=wire["direction"],
            profile=wire["profile"],
            commands=nested("target", lambda: Commands.from_wire(wire["commands"])),
            stats=nested("target", lambda: Stats.from_wire(wire["stats"])),
            limits=nested("target", lambda: Limits.from_wire(wire["limits"])),
            validators=tuple(validators),
            genesis_time_ms=wire["genesis_time_ms"],
            epoch_seconds=wire["epoch_seconds"],
            quorum_ppm=wire["quorum_ppm"],
        )

    def __hash__(self) -> int:
        return hash(self.cid)


def _check_glob(where: str, glob: object) -> None:
    check_str(where, glob, max_bytes=MAX_LABEL_BYTES)
    problem = glob_problem(glob)
    if problem:
        raise fail(where, problem)


def _check_validator(where: str, value: object) -> None:
    if not isinstance(value, Validator):
        raise fail(where, f"expected a Validator, got {type(value).__name__}")
