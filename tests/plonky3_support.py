"""Helpers for the tests of the Plonky3 NTT example target (examples/plonky3).

Patches are applied to scratch copies of the workspace's base tree; each copy starts from a copy
of the baseline's target/release, so cargo rebuilds only the crates a patch changed.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from verifier.candidates import PatchFile, apply_patch, read_patch

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = ROOT / "examples" / "plonky3"
PATCHES = WORKSPACE / "patches"
# The target's base tree: the workspace minus target/, patches/, targets/ and README.md.
BASE_TREE = ("Cargo.toml", "Cargo.lock", "rust-toolchain.toml",
             "baby-bear", "dft", "reference", "gate", "bench")
WRITABLE_GLOBS = ("baby-bear/src/**", "dft/src/**")
VERDICTS = {"improved", "gate_failed", "scope_violation", "build_failed", "timeout",
            "not_improved"}
SEED = "5eed" * 16


def patches(kind: str) -> list[PatchFile]:
    return [read_patch(p) for p in sorted((PATCHES / kind).glob("*.patch"))]


def all_patches() -> dict[str, PatchFile]:
    return {p.name: p for p in patches("good") + patches("hostile")}


def chain(patch: PatchFile) -> list[PatchFile]:
    """The patch preceded by everything it depends on, in application order."""
    by_name = all_patches()
    out = [patch]
    while out[0].depends_on:
        out.insert(0, by_name[out[0].depends_on])
    return out


@dataclass(frozen=True)
class Touched:
    path: str
    new_mode: str | None


def touched_paths(patch: PatchFile) -> list[Touched]:
    """Every path a patch's diff touches (both sides of renames), with any new file mode."""
    out: list[Touched] = []
    current: list[str] = []
    mode: str | None = None

    def flush() -> None:
        out.extend(Touched(p, mode) for p in current)

    for line in patch.path.read_text().splitlines():
        m = re.match(r"diff --git a/(\S+) b/(\S+)$", line)
        if m:
            flush()
            current, mode = sorted({m.group(1), m.group(2)}), None
        elif line.startswith(("new file mode ", "new mode ")):
            mode = line.split()[-1]
    flush()
    return out


def is_writable(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, g) for g in WRITABLE_GLOBS) and ".." not in path.split("/")


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def build(ws: Path, *packages: str) -> None:
    """`cargo build --release --offline --frozen` (restricted to `packages` if given)."""
    cmd = ["cargo", "build", "--release", "--offline", "--frozen"]
    for p in packages:
        cmd += ["-p", p]
    proc = run(cmd, ws)
    assert proc.returncode == 0, f"build failed in {ws}:\n{proc.stderr[-4000:]}"


def copy_base_tree(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for item in BASE_TREE:
        src = WORKSPACE / item
        if src.is_dir():
            shutil.copytree(src, dest / item, symlinks=True)
        else:
            shutil.copy2(src, dest / item)
    return dest


def patched_workspace(dest: Path, patch_chain: list[PatchFile]) -> Path:
    """A copy of the base tree with the baseline's target/release and the patches applied."""
    ws = copy_base_tree(dest)
    shutil.copytree(WORKSPACE / "target" / "release", ws / "target" / "release", symlinks=True)
    for p in patch_chain:
        apply_patch(p, ws)
    return ws


def run_json(binary: Path, args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, dict]:
    """Runs a gate/bench binary; returns its exit code and its one JSON line on stdout."""
    proc = run([str(binary), *args], cwd, timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one JSON line, got {proc.stdout!r} (stderr {proc.stderr!r})"
    return proc.returncode, json.loads(lines[0])


def gate(ws: Path, max_log_size: int | None = None, simd: str = "avx2",
         seed: str = SEED) -> tuple[int, dict]:
    args = ["--seed", seed, "--simd", simd]
    if max_log_size is not None:
        args += ["--max-log-size", str(max_log_size)]
    return run_json(ws / "target" / "release" / "gate", args, ws)


def bench(ws: Path, args: list[str], seed: str = SEED) -> tuple[int, dict]:
    return run_json(ws / "target" / "release" / "bench", [*args, "--seed", seed], ws)
