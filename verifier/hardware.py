"""Hardware profiles and toolchain identity (DESIGN §5, §8; docs/PROTOCOL.md §Target, §Attestation).

A target names a hardware *profile*; a verifier attests only targets whose profile its CPU
satisfies, and every attestation carries the profile and the toolchain that produced it, so two
measurements are comparable only when both match.

Profiles require exactly the CPU flags that the example target's kernels are compiled for and
check at run time (``examples/plonky3/baby-bear/src/packed``: ``#[target_feature(enable = "avx2")]``
and ``is_x86_feature_detected!("avx2")``, likewise ``avx512f``). The BabyBear kernels are integer
Montgomery arithmetic: they use no FMA and no BMI2, so requiring those would only turn away CPUs
that run the kernels fine. If a kernel starts using another extension, add its flag here.

The parser is pure (text in, flags out); ``read_cpu_flags`` and the toolchain probes are the thin
I/O edge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROFILE_FLAGS: Mapping[str, frozenset[str]] = {
    "avx2": frozenset({"avx2"}),
    "avx512": frozenset({"avx512f"}),
}
"""Profile name -> the /proc/cpuinfo flags a CPU needs to attest targets of that profile."""

CPUINFO = Path("/proc/cpuinfo")
TOOL_TIMEOUT_S = 60
"""rustc/cargo --version normally answer in milliseconds; this only bounds a wedged rustup."""


class HardwareError(Exception):
    """Base class: this machine cannot do what was asked of it; the message says why."""


class UnknownProfile(HardwareError, ValueError):
    """A profile name that no CPU can satisfy because poi does not define it."""


class ProfileUnsupported(HardwareError):
    """This CPU lacks flags a profile needs."""

    def __init__(self, profile: str, missing: Iterable[str]) -> None:
        self.profile = profile
        self.missing = tuple(sorted(missing))
        super().__init__(f"this CPU lacks {', '.join(self.missing)}: "
                         f"it cannot attest {profile} targets")


class ToolchainError(HardwareError):
    """The Rust toolchain cannot be found or identified."""


# --- CPU profiles --------------------------------------------------------------------------


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags every processor in a /proc/cpuinfo text has (x86 ``flags`` lines).

    The intersection, not the first core's flags: on a heterogeneous machine a kernel may be
    scheduled on any core, so only a flag all cores share is usable. Text without flags lines
    (another architecture, an empty file) gives the empty set.
    """
    common: frozenset[str] | None = None
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags = frozenset(value.split())
            common = flags if common is None else common & flags
    return common or frozenset()


def profiles_for_flags(flags: Iterable[str]) -> frozenset[str]:
    """The profiles a CPU with these flags satisfies."""
    have = frozenset(flags)
    return frozenset(name for name, need in PROFILE_FLAGS.items() if need <= have)


def missing_flags(profile: str, flags: Iterable[str]) -> frozenset[str]:
    """The flags a CPU with ``flags`` lacks for ``profile`` (empty: it satisfies it)."""
    if profile not in PROFILE_FLAGS:
        raise UnknownProfile(f"unknown hardware profile {profile!r}: poi defines "
                             f"{', '.join(sorted(PROFILE_FLAGS))}")
    return PROFILE_FLAGS[profile] - frozenset(flags)


def read_cpu_flags(path: Path = CPUINFO) -> frozenset[str]:
    """This machine's CPU flags (empty when /proc/cpuinfo is unreadable or not x86)."""
    try:
        return parse_cpu_flags(path.read_text(errors="replace"))
    except OSError:
        return frozenset()


def host_profiles(path: Path = CPUINFO) -> set[str]:
    """The profiles this machine's CPU satisfies."""
    return set(profiles_for_flags(read_cpu_flags(path)))


def check_profile(profile: str, flags: Iterable[str] | None = None) -> None:
    """Raise ProfileUnsupported (naming the missing flags) unless the CPU satisfies ``profile``.

    ``flags`` defaults to this machine's.
    """
    missing = missing_flags(profile, read_cpu_flags() if flags is None else flags)
    if missing:
        raise ProfileUnsupported(profile, missing)


# --- toolchain -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    """One installed Rust toolchain, identified by what its own binaries say."""

    sysroot: Path
    """Holds bin/rustc and bin/cargo; the sandbox binds it at verifier.sandbox.TOOLCHAIN_DIR."""
    rustc: str
    """``rustc --version``, e.g. "rustc 1.95.0 (59807616e 2026-04-14)": attestations carry it."""
    cargo: str
    """``cargo --version``, e.g. "cargo 1.95.0 (f2d3ce0bd 2026-03-21)"."""

    @property
    def id(self) -> str:
        """The toolchain string an attestation carries (and build caches are keyed by)."""
        return self.rustc


def find_rustc() -> str:
    """rustc on PATH, else rustup's default place (~/.cargo/bin), else ToolchainError."""
    found = shutil.which("rustc")
    if found:
        return found
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    candidate = cargo_home / "bin" / "rustc"
    if os.access(candidate, os.X_OK):
        return str(candidate)
    raise ToolchainError("rustc not found on PATH or in ~/.cargo/bin: install Rust "
                         "(https://rustup.rs, or apt-get install rustc cargo) or put it on PATH")


def detect_toolchain(workspace: Path | None = None, rustc: str | None = None) -> Toolchain:
    """Identify the toolchain that builds ``workspace``.

    Asks ``rustc --print sysroot`` from the workspace (so a rustup proxy honours its
    rust-toolchain.toml, without installing anything: RUSTUP_AUTO_INSTALL=0), then asks the
    sysroot's own rustc and cargo for their versions: the binaries the sandbox will run are
    the ones identified.
    """
    rustc = rustc or find_rustc()
    cwd = workspace if workspace is not None else Path.cwd()
    sysroot = Path(_tool_output([rustc, "--print", "sysroot"], cwd))
    for name in ("rustc", "cargo"):
        if not os.access(sysroot / "bin" / name, os.X_OK):
            raise ToolchainError(f"{sysroot}/bin/{name} is missing: the toolchain at {sysroot} "
                                 "is incomplete (rustup component add cargo)")
    return Toolchain(
        sysroot=sysroot,
        rustc=_tool_output([str(sysroot / "bin" / "rustc"), "--version"], cwd),
        cargo=_tool_output([str(sysroot / "bin" / "cargo"), "--version"], cwd),
    )


def _tool_output(argv: list[str], cwd: Path) -> str:
    env = {**os.environ, "RUSTUP_AUTO_INSTALL": "0"}
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"cannot run {' '.join(argv)}: {exc}") from exc
    line = done.stdout.strip()
    if done.returncode != 0 or not line or "\n" in line:
        raise ToolchainError(f"{' '.join(argv)} failed (exit {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()[:500]}")
    return line
