"""The NTT example target's gate separates good patches from wrong ones (DESIGN §8, §11).

Every good patch (with the patches it depends on) is applied to a scratch copy of the workspace,
built, and must pass the full gate (sizes up to 2^18, FRI proof included). Every patch that
computes wrong results must build and then fail: the gate for wrong kernels and caches, the
benchmark's own validation for the kernel that only cheats under the benchmark. Patches with
side effects (network, file writes, loops, bombs) are never run here, only checked statically;
running them is the sandbox's job (tests/test_sandbox_hostile.py).

Builds reuse a copy of the baseline's target/release, so only the changed crates recompile; the
whole file takes about a minute (57-75 s) on the 2-core development machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from verifier.candidates import apply_patch

from .plonky3_support import (
    SEED,
    VERDICTS,
    WORKSPACE,
    PatchFile,
    bench,
    build,
    chain,
    copy_base_tree,
    gate,
    is_writable,
    patched_workspace,
    patches,
    run,
    touched_paths,
)

GOOD = patches("good")
HOSTILE = patches("hostile")
QUICK_BENCH = ["--log-size", "14", "--width", "16", "--reps", "3", "--threads", "1",
               "--simd", "avx2"]
# Wrong-result patches and the gate check expected to catch each (quick gate: up to 2^13).
WRONG_RESULTS = {
    "01-twiddle-table-cap-wrong-at-large-sizes.patch": {"dft", "idft", "coset_dft", "coset_lde"},
    "02-avx2-wrong-blend-mask.patch": {"field", "dft", "idft", "coset_dft", "coset_lde"},
    "03-result-cache-across-calls.patch": {"fresh_calls"},
}
BENCHMARK_CHEATS = {"04-detect-benchmark.patch"}
# Wrong by exhausting resources: for the sandbox only, like every side-effect patch.
BOMBS = {"12-memory-bomb.patch", "13-thread-bomb.patch"}


def ids(ps: list[PatchFile]) -> list[str]:
    return [p.name.removesuffix(".patch") for p in ps]


@pytest.fixture(scope="module")
def baseline() -> Path:
    """The workspace itself, built (the baseline binaries and the target/ copied into scratch)."""
    build(WORKSPACE)
    return WORKSPACE


# --- the gate on the baseline and on good patches --------------------------------------------


def test_baseline_passes_the_full_gate(baseline: Path) -> None:
    rc, out = gate(baseline)
    assert (rc, out["gate"]) == (0, "pass"), out
    assert out["checks"] > 500 and out["seed"] == SEED and out["simd"] == "avx2"


@pytest.mark.parametrize("patch", GOOD, ids=ids(GOOD))
def test_good_patch_passes_the_full_gate(baseline: Path, tmp_path: Path, patch: PatchFile) -> None:
    ws = patched_workspace(tmp_path / "ws", chain(patch))
    build(ws, "gate")
    rc, out = gate(ws)
    assert (rc, out["gate"]) == (0, "pass"), f"{patch.name}: {out}"


# --- wrong results are caught ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRONG_RESULTS))
def test_wrong_result_patch_fails_the_gate(baseline: Path, tmp_path: Path, name: str) -> None:
    patch = next(p for p in HOSTILE if p.name == name)
    assert patch.expect == "gate_failed"
    ws = patched_workspace(tmp_path / "ws", chain(patch))
    build(ws, "gate")
    rc, out = gate(ws, max_log_size=13)
    assert rc == 1 and out["gate"] == "fail", f"{name} passed the gate: {out}"
    assert out["check"] in WRONG_RESULTS[name], out
    assert out["seed"] == SEED and out["detail"]


def test_wrong_only_at_large_sizes_passes_small_gates(baseline: Path, tmp_path: Path) -> None:
    """The large-size bug is invisible below 2^15 rows: only a gate that reaches it catches it."""
    patch = next(p for p in HOSTILE if p.name.startswith("01-"))
    ws = patched_workspace(tmp_path / "ws", chain(patch))
    build(ws, "gate")
    rc, out = gate(ws, max_log_size=10)
    assert (rc, out["gate"]) == (0, "pass"), out
    rc, out = gate(ws)
    assert rc == 1 and out["check"] in WRONG_RESULTS[patch.name] and out["log_size"] >= 13, out


@pytest.mark.parametrize("name", sorted(BENCHMARK_CHEATS))
def test_benchmark_cheat_passes_the_gate_but_fails_the_bench(baseline: Path, tmp_path: Path,
                                                             name: str) -> None:
    patch = next(p for p in HOSTILE if p.name == name)
    ws = patched_workspace(tmp_path / "ws", chain(patch))
    build(ws, "gate", "bench")
    rc, out = gate(ws, max_log_size=13)
    assert (rc, out["gate"]) == (0, "pass"), out
    rc, out = bench(ws, QUICK_BENCH)
    assert rc == 1 and out["ok"] is False and "check" in out["error"], out


def test_baseline_bench_validates_every_call(baseline: Path) -> None:
    rc, out = bench(baseline, QUICK_BENCH)
    assert rc == 0 and out["ok"] is True, out
    assert out["metric"] == "lde_ns" and out["value"] > 0 and len(out["samples_ns"]) == 3
    assert out["linear_checks"] == 4 and out["validated"] > 0
    assert (out["log_size"], out["width"], out["threads"], out["simd"]) == (14, 16, 1, "avx2")


# --- the patch set is well formed ------------------------------------------------------------


@pytest.mark.parametrize("patch", GOOD + HOSTILE, ids=ids(GOOD + HOSTILE))
def test_patch_headers_are_complete(patch: PatchFile) -> None:
    h = patch.headers
    assert h.get("title") and h.get("kind") in ("good", "hostile")
    assert patch.expect in VERDICTS
    if h.get("kind") == "good":
        assert patch.expect == "improved" and "%" in h.get("measured", ""), h
        assert patch.path.parent.name == "good"
    else:
        assert patch.expect != "improved" and h.get("threat"), h
        assert patch.path.parent.name == "hostile"
    if patch.depends_on:
        assert (patch.path.parent / patch.depends_on).is_file()


@pytest.mark.parametrize("patch", GOOD + HOSTILE, ids=ids(GOOD + HOSTILE))
def test_patch_applies_to_the_base_tree(tmp_path: Path, patch: PatchFile) -> None:
    ws = copy_base_tree(tmp_path / "ws")
    before = _contents(ws)
    for p in chain(patch):
        apply_patch(p, ws)  # raises CandidateError with git's reason when it does not apply
    assert _contents(ws) != before, f"{patch.name} changed nothing"


def _contents(root: Path) -> dict[Path, bytes | str]:
    """Every file's bytes, every symlink's target (a hostile patch may add one)."""
    return {p: os.readlink(p) if p.is_symlink() else p.read_bytes()
            for p in root.rglob("*") if p.is_symlink() or p.is_file()}


@pytest.mark.parametrize("patch", GOOD + HOSTILE, ids=ids(GOOD + HOSTILE))
def test_scope_verdict_matches_the_paths_touched(patch: PatchFile) -> None:
    """Exactly the scope_violation patches leave the writable globs or add a symlink."""
    touched = touched_paths(patch)
    assert touched
    escapes = [t for t in touched if not is_writable(t.path) or t.new_mode == "120000"]
    assert bool(escapes) == (patch.expect == "scope_violation"), touched


def test_patch_set_has_branches_and_enough_of_each_kind() -> None:
    assert len(GOOD) >= 5 and len(HOSTILE) >= 10
    roots = [p for p in GOOD if not p.depends_on]
    stacked = [p for p in GOOD if p.depends_on]
    assert len(roots) >= 2 and len(stacked) >= 2
    expects = {p.expect for p in HOSTILE}
    assert {"gate_failed", "scope_violation", "build_failed", "timeout",
            "not_improved"} <= expects
    # Every patch expected to fail the gate is run above, unless it is a resource bomb.
    for p in HOSTILE:
        if p.expect == "gate_failed":
            assert p.name in WRONG_RESULTS.keys() | BENCHMARK_CHEATS | BOMBS, p.name


# --- the command-line contracts ----------------------------------------------------------------


def test_gate_is_deterministic_given_the_seed(baseline: Path) -> None:
    first = gate(baseline, max_log_size=8)[1]
    second = gate(baseline, max_log_size=8)[1]
    first.pop("ms"), second.pop("ms")
    assert first == second and first["gate"] == "pass"


@pytest.mark.parametrize(("binary", "args"), [
    ("gate", []),
    ("gate", ["--seed", "12"]),
    ("gate", ["--seed", SEED, "--simd", "neon"]),
    ("gate", ["--seed", SEED, "--max-log-size", "99"]),
    ("bench", ["--log-size", "10", "--seed", SEED]),
    ("bench", ["--log-size", "10", "--width", "0", "--seed", SEED]),
    ("bench", ["--log-size", "10", "--width", "4", "--seed", SEED, "--frobnicate", "1"]),
])
def test_bad_arguments_exit_2_with_usage(baseline: Path, binary: str, args: list[str]) -> None:
    proc = run([str(baseline / "target" / "release" / binary), *args], baseline)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_floor_reports_a_butterfly_throughput(baseline: Path) -> None:
    proc = run([str(baseline / "target" / "release" / "floor"), "--millis", "20",
                "--log-size", "10", "--width", "4"], baseline)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["simd"] == "avx2" and out["lanes"] == 8 and out["ns_per_vector_butterfly"] > 0
    assert out["lde_floor_ns"] > 0
