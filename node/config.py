"""Node configuration: ``<data_dir>/config.toml``, overridable by command-line flags.

Every key has a default, so ``poi init`` writes a complete, commented-by-structure file and an
operator changes only what differs. Unknown keys are refused with their name (a typo in a
security setting must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

ROLES = ("observer", "verifier", "proposer")
BYZANTINE_MODES = ("", "lie", "equivocate")
CONFIG_NAME = "config.toml"


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the key."""


@dataclass
class NodeSection:
    roles: list[str] = field(default_factory=lambda: ["observer"])
    log_level: str = "info"
    name: str = ""
    """A human label for logs and the dashboard (defaults to the peer ID's tail)."""


@dataclass
class NetworkSection:
    listen: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/0"])
    bootstrap: list[str] = field(default_factory=list)


@dataclass
class HttpSection:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port; the node writes the one it bound to ``status.json``."""


@dataclass
class TargetsSection:
    follow: list[str] = field(default_factory=list)
    """CIDs of the targets (DAGs) this node follows."""
    genesis_files: list[str] = field(default_factory=list)
    """Genesis bundles (target, base tree, blobs) to load at start, relative to the data dir."""


@dataclass
class VerifierSection:
    sandbox: bool = True
    """False runs proposer code without bubblewrap: only for trusted local experiments."""
    pairs: int = 0
    """Paired benchmark runs per commit; 0 uses the target's ``stats.pairs``."""
    byzantine: str = ""
    """Devnet only: 'lie' (sign improved for everything) or 'equivocate'."""
    bench_lock: str = "/tmp/poi-bench.lock"
    """Host-wide lock file: co-located nodes never benchmark at the same time."""
    build_cache: str = ""
    """Directory of release builds keyed by (tree, toolchain, profile), shared by this node's
    pipelines and any other node's on the machine that names it (empty: each pipeline keeps
    its own under work/); relative to the data directory."""


@dataclass
class ProposerSection:
    strategy: str = "patches"
    patches_dir: str = ""
    model: str = "claude-sonnet-4-6"
    max_tokens: int = 20_000
    max_iterations: int = 0
    """0 means until the strategy has nothing left (patches) or a budget stops it (claude)."""


@dataclass
class Config:
    node: NodeSection = field(default_factory=NodeSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    http: HttpSection = field(default_factory=HttpSection)
    targets: TargetsSection = field(default_factory=TargetsSection)
    verifier: VerifierSection = field(default_factory=VerifierSection)
    proposer: ProposerSection = field(default_factory=ProposerSection)

    def check(self, where: str = "config") -> None:
        for role in self.node.roles:
            if role not in ROLES:
                raise ConfigError(f"{where}: node.roles: unknown role {role!r} "
                                  f"(choose from {', '.join(ROLES)})")
        if not self.node.roles:
            raise ConfigError(f"{where}: node.roles: at least one role")
        if self.verifier.byzantine not in BYZANTINE_MODES:
            raise ConfigError(f"{where}: verifier.byzantine: {self.verifier.byzantine!r} is not "
                              "one of 'lie', 'equivocate'")
        if not 0 <= self.http.port <= 65535:
            raise ConfigError(f"{where}: http.port: {self.http.port} is not a port")
        if self.proposer.strategy not in ("patches", "claude"):
            raise ConfigError(f"{where}: proposer.strategy: {self.proposer.strategy!r} is not "
                              "'patches' or 'claude'")

    def to_toml(self) -> str:
        return tomli_w.dumps(dataclasses.asdict(self))


def _section(cls: type, where: str, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names.keys())
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    defaults = cls()
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{where}.{key}: expected {expected.__name__}, "
                              f"got {type(value).__name__}")
    return cls(**data)


def parse_config(text: str, where: str = "config") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - sections.keys())
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}")
    kwargs = {}
    for f in dataclasses.fields(Config):
        if f.name in data:
            cls = type(getattr(Config(), f.name))
            kwargs[f.name] = _section(cls, f"{where}: {f.name}", data[f.name])
    config = Config(**kwargs)
    config.check(where)
    return config


def load_config(data_dir: Path) -> Config:
    path = Path(data_dir) / CONFIG_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: run `poi init {data_dir}` first") from None
    return parse_config(text, str(path))


def write_config(data_dir: Path, config: Config) -> Path:
    from .keystore import write_atomic

    config.check()
    path = Path(data_dir) / CONFIG_NAME
    write_atomic(path, config.to_toml().encode(), mode=0o644)
    return path
