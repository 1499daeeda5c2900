"""The evaluation pipeline shared by verifiers and proposers (DESIGN §5, docs/PROTOCOL.md §5).

    scope check → materialise → build (cached) → gate (fresh seed) → paired benchmark → verdict

Each step that runs proposer code runs in the sandbox. The verdict is one of the protocol's
results; a situation where no honest verdict can be given (this CPU lacks the target's profile,
the parent itself does not build here, no sandbox) raises :class:`EvaluationError` instead, and
nothing is attested.

Paths: every command runs with the workspace as its working directory; the build output is the
sandbox's build directory (``CARGO_TARGET_DIR``), and in gate and bench commands an argument
that starts with ``target/`` names a file in it (docs/PROTOCOL.md §Evaluation).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dag.scope import Violation, check_scope
from protocol.cid import CID
from protocol.objects import (
    BUILD_FAILED,
    GATE_FAILED,
    MEASURED_RESULTS,
    SCOPE_VIOLATION,
    TIMEOUT,
    Target,
    Tree,
    Verdict,
)

from .candidates import Workspace
from .hardware import Toolchain, check_profile, detect_toolchain
from .sandbox import (
    BUILD_DIR,
    ResourceLimits,
    SandboxPolicy,
    SandboxResult,
    run_sandboxed,
)
from .stats import PairedEstimate, estimate_for_target

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages are scope, build, gate, bench, done."""

STDERR_TAIL = 600


class EvaluationError(Exception):
    """No honest verdict can be given here; the message says why. Nothing is attested."""


@dataclass(frozen=True)
class StepTiming:
    step: str
    wall_s: float
    cached: bool = False


@dataclass
class Evaluation:
    """The outcome of evaluating a candidate against its parent."""

    result: str
    gate_seed: bytes
    profile: str
    toolchain: str
    detail: str = ""
    estimate: PairedEstimate | None = None
    pairs_ns: list[tuple[int, int]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    timings: list[StepTiming] = field(default_factory=list)
    bench_run_s: float = 0.0
    """Wall time of the benchmark processes themselves (sandbox start-up included)."""
    bench_phase_s: float = 0.0
    """Wall time of the whole paired-benchmark phase (the lock wait excluded)."""

    @property
    def measured(self) -> bool:
        return self.result in MEASURED_RESULTS and self.estimate is not None

    def verdict(self, commit: CID, parent: CID) -> Verdict:
        """The protocol verdict this evaluation supports (DESIGN §3)."""
        est = self.estimate if self.measured else None
        return Verdict(
            commit=commit, parent=parent, result=self.result,
            ratio_ppm=est.ratio_ppm if est else 0, lo_ppm=est.lo_ppm if est else 0,
            hi_ppm=est.hi_ppm if est else 0, pairs=est.pairs if est else 0,
            gate_seed=self.gate_seed, profile=self.profile, toolchain=self.toolchain)

    def summary(self) -> str:
        if self.measured:
            est = self.estimate
            return (f"{self.result}: ratio {est.ratio_ppm / 1e6:.4f} "
                    f"[{est.lo_ppm / 1e6:.4f}, {est.hi_ppm / 1e6:.4f}] over {est.pairs} pairs")
        return f"{self.result}: {self.detail}"


@dataclass(frozen=True)
class Build:
    status: str
    """``ok``, ``build_failed`` or ``timeout``."""
    workspace_dir: Path
    build_dir: Path
    detail: str
    wall_s: float
    cached: bool


@dataclass(frozen=True)
class GateOutcome:
    passed: bool | None
    """True / False; None when it did not finish (timeout, or a limit killed it)."""
    detail: str
    wall_s: float


class Pipeline:
    """Evaluates candidates of one target on this machine."""

    def __init__(self, target: Target, base_tree: Tree, work_dir: Path, *,
                 sandbox: bool = True, bench_lock: Path | str = "/tmp/poi-bench.lock",
                 build_cache: Path | str | None = None,
                 toolchain: Toolchain | None = None, progress: Progress | None = None,
                 rng: random.Random | None = None) -> None:
        try:
            check_profile(target.profile)
        except Exception as exc:
            raise EvaluationError(f"cannot evaluate {target.name}: {exc}") from None
        self.target = target
        self.base_tree = base_tree
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work_dir, 0o755)  # the sandbox user must traverse it
        self.build_cache = Path(build_cache) if build_cache else self.work_dir / "builds"
        """Builds by (tree, toolchain, profile): this pipeline's own, or a directory several
        pipelines (nodes on one machine) share."""
        self.sandbox = sandbox
        self.bench_lock = Path(bench_lock)
        self.toolchain = toolchain or detect_toolchain()
        self.progress = progress or (lambda stage, done, total: None)
        self.rng = rng or random.SystemRandom()
        self._lock = threading.Lock()

    # -- the whole pipeline -------------------------------------------------------------------

    def evaluate(self, parent: Workspace, candidate: Workspace, *, pairs: int | None = None,
                 gate_seed: bytes | None = None) -> Evaluation:
        """Evaluate ``candidate`` against ``parent`` with ``pairs`` paired benchmark runs."""
        pairs = pairs or self.target.stats.pairs
        seed = gate_seed or secrets.token_bytes(32)
        ev = Evaluation(result=TIMEOUT, gate_seed=seed, profile=self.target.profile,
                        toolchain=self.toolchain.id)

        self.progress("scope", 0, 1)
        ev.violations = check_scope(self.base_tree.entries, candidate.scan,
                                    self.target.writable, self.target.limits.max_file_bytes)
        if ev.violations:
            ev.result, ev.detail = SCOPE_VIOLATION, "; ".join(map(str, ev.violations))
            return self._done(ev)

        self.progress("build", 0, 2)
        parent_build = self.build(parent)
        ev.timings.append(StepTiming("build parent", parent_build.wall_s, parent_build.cached))
        if parent_build.status != "ok":
            raise EvaluationError(f"the parent does not build here ({parent_build.status}): "
                                  f"{parent_build.detail}")
        self.progress("build", 1, 2)
        build = self.build(candidate)
        ev.timings.append(StepTiming("build candidate", build.wall_s, build.cached))
        if build.status != "ok":
            ev.result = TIMEOUT if build.status == TIMEOUT else BUILD_FAILED
            ev.detail = build.detail
            return self._done(ev)

        self.progress("gate", 0, 1)
        gate = self.gate(build, seed)
        ev.timings.append(StepTiming("gate", gate.wall_s))
        if gate.passed is not True:
            ev.result = TIMEOUT if gate.passed is None else GATE_FAILED
            ev.detail = gate.detail
            return self._done(ev)

        return self._done(self._benchmark(ev, parent_build, build, pairs))

    def _done(self, ev: Evaluation) -> Evaluation:
        self.progress("done", 1, 1)
        return ev

    # -- build --------------------------------------------------------------------------------

    def build(self, workspace: Workspace) -> Build:
        """Build ``workspace`` once per (tree, toolchain, profile); later calls reuse it."""
        key = hashlib.sha256(f"{workspace.tree_cid}|{self.toolchain.id}|{self.target.profile}"
                             .encode()).hexdigest()[:32]
        root = self.build_cache / key
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.build_cache, 0o755)
        os.chmod(root, 0o755)
        with _file_lock(root.with_suffix(".lock")):
            status_file = root / "status.json"
            ws_dir, build_dir = root / "ws", root / "target"
            if status_file.exists():
                s = json.loads(status_file.read_text())
                return Build(s["status"], ws_dir, build_dir, s["detail"], s["wall_s"], True)
            for stale in (ws_dir, build_dir):
                if stale.exists():
                    _remove_tree(stale)
            workspace.materialize(ws_dir)
            build_dir.mkdir()
            started = time.monotonic()
            result = self._run("build", list(self.target.commands.build), ws_dir,
                               writable={BUILD_DIR: build_dir})
            wall = time.monotonic() - started
            status = "ok" if result.ok else (TIMEOUT if _timed_out(result) else BUILD_FAILED)
            detail = "" if result.ok else _describe(result)
            _write_json(status_file, {"status": status, "detail": detail, "wall_s": wall})
            return Build(status, ws_dir, build_dir, detail, wall, False)

    # -- gate ---------------------------------------------------------------------------------

    def gate(self, build: Build, seed: bytes) -> GateOutcome:
        """Run the target's gate on a built workspace with ``seed`` (deterministic given both).

        Anyone holding an attestation can call this with its revealed seed to re-run the gate
        exactly (a challenge committee does).
        """
        argv = self._with_build_paths(self.target.commands.with_seed("gate", seed.hex()))
        started = time.monotonic()
        result = self._run("gate", argv, build.workspace_dir, ro_build=build.build_dir)
        wall = time.monotonic() - started
        if _timed_out(result):
            return GateOutcome(None, _describe(result), wall)
        if result.ok:
            return GateOutcome(True, "", wall)
        report = _last_json(result.stdout)
        if report and report.get("gate") == "fail":
            detail = ", ".join(f"{k}={report[k]}" for k in ("check", "log_size", "width",
                                                              "detail") if k in report)
            return GateOutcome(False, f"gate failed: {detail}", wall)
        return GateOutcome(False, _describe(result), wall)

    # -- paired benchmark ---------------------------------------------------------------------

    def _benchmark(self, ev: Evaluation, parent: Build, candidate: Build, pairs: int
                   ) -> Evaluation:
        """K pairs, each in random order, each run a fresh process on a fresh input seed, under
        the host-wide benchmark lock so co-located nodes never measure at the same time."""
        with _file_lock(self.bench_lock), _pinned(self.target.limits.bench_cpus):
            phase_started = time.monotonic()
            for index in range(pairs):
                self.progress("bench", index, pairs)
                input_seed = secrets.token_bytes(32).hex()
                order = [("parent", parent), ("candidate", candidate)]
                self.rng.shuffle(order)
                measured: dict[str, int] = {}
                for role, build in order:
                    value, failure, run_s = self._bench_once(build, input_seed)
                    ev.bench_run_s += run_s
                    if failure is not None:
                        if role == "parent":
                            raise EvaluationError(f"the parent's benchmark failed here: "
                                                  f"{failure[1]}")
                        ev.result, ev.detail = failure
                        ev.bench_phase_s = time.monotonic() - phase_started
                        return ev
                    measured[role] = value
                ev.pairs_ns.append((measured["parent"], measured["candidate"]))
            ev.bench_phase_s = time.monotonic() - phase_started
        self.progress("bench", pairs, pairs)
        ev.estimate = estimate_for_target(ev.pairs_ns, self.target.stats, self.target.direction)
        ev.result = ev.estimate.verdict
        ev.timings.append(StepTiming("bench", ev.bench_phase_s))
        return ev

    def _bench_once(self, build: Build, input_seed: str
                    ) -> tuple[int, tuple[str, str] | None, float]:
        argv = self._with_build_paths(self.target.commands.with_seed("bench", input_seed))
        result = self._run("bench", argv, build.workspace_dir, ro_build=build.build_dir)
        if _timed_out(result):
            return 0, (TIMEOUT, f"benchmark: {_describe(result)}"), result.wall_s
        report = _last_json(result.stdout)
        if not result.ok or report is None:
            return 0, (GATE_FAILED, f"benchmark rejected the output: {_describe(result)}"), \
                result.wall_s
        value = report.get("value")
        if (report.get("metric") != self.target.metric or report.get("ok") is not True
                or type(value) is not int or value <= 0):
            return 0, (GATE_FAILED, f"benchmark report is not a valid {self.target.metric} "
                                    f"measurement: {json.dumps(report)[:300]}"), result.wall_s
        return value, None, result.wall_s

    # -- running commands ---------------------------------------------------------------------

    def _with_build_paths(self, argv: list[str]) -> list[str]:
        return [BUILD_DIR + arg[len("target"):] if arg.startswith("target/") else arg
                for arg in argv]

    def _run(self, step: str, argv: list[str], workspace_dir: Path, *,
             writable: dict[str, Path] | None = None, ro_build: Path | None = None
             ) -> SandboxResult:
        policy = SandboxPolicy.rust(self.toolchain.sysroot,
                                    ResourceLimits.for_step(self.target.limits, step),
                                    unsafe_no_sandbox=not self.sandbox)
        if ro_build is not None:
            policy = dataclasses.replace(policy, ro_binds={**policy.ro_binds,
                                                           BUILD_DIR: ro_build})
        return run_sandboxed(argv, policy=policy, workspace=workspace_dir, writable=writable)


def _timed_out(result: SandboxResult) -> bool:
    return result.timed_out or result.limit_hit in ("timeout", "cpu")


def _describe(result: SandboxResult) -> str:
    if _timed_out(result):
        return f"{result.limit_hit or 'timeout'} after {result.wall_s:.1f}s"
    status = (f"killed by signal {result.signal}" if result.signal
              else f"exit status {result.returncode}")
    if result.limit_hit:
        status += f" ({result.limit_hit} limit)"
    tail = result.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
    return f"{status}: {tail}" if tail else status


def _last_json(stdout: bytes) -> dict | None:
    for line in reversed(stdout.decode("utf-8", "replace").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


@contextmanager
def _pinned(cpus: int) -> Iterator[None]:
    """Run the benchmark phase (and, by inheritance, every process it starts) on the ``cpus``
    lowest CPUs this process may use (0: leave it alone), the target's ``limits.bench_cpus``.
    The lowest are taken, so a node pinned by its operator (or the devnet) stays on its own."""
    allowed = os.sched_getaffinity(0)
    if not cpus:
        yield
        return
    try:
        os.sched_setaffinity(0, set(sorted(allowed)[:cpus]))
    except OSError:  # pragma: no cover - a cgroup that forbids it: measure unpinned
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock, held across processes (the host-wide benchmark lock uses it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _remove_tree(path: Path) -> None:
    """Remove a directory a sandboxed build may have filled: never follow its symlinks."""
    import shutil

    shutil.rmtree(path, ignore_errors=False)
