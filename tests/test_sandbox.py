"""The sandbox runs ordinary commands faithfully (verifier/sandbox.py, docs/PROTOCOL.md §Sandbox).

Real bubblewrap processes, no mocks. The hostile programs are in test_sandbox_hostile.py; the
helpers shared with it (a unique argv marker per test, leftover-process checks) live here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.objects import Limits
from verifier.hardware import ToolchainError, detect_toolchain
from verifier.sandbox import (
    BUILD_DIR,
    SANDBOX_UID,
    WORKSPACE_DIR,
    ResourceLimits,
    SandboxConfigError,
    SandboxPolicy,
    SandboxResult,
    SandboxSetupError,
    SandboxUnavailable,
    check_sandbox,
    run_sandboxed,
)

SYSTEM_PYTHON = "/usr/bin/python3"


def _sandbox_python() -> tuple[str, dict[str, Path]]:
    """A Python the hostile programs can run inside: the host's /usr one (visible as is), or
    else this interpreter's installation bound read-only at /opt/python."""
    if os.access(SYSTEM_PYTHON, os.X_OK):
        return SYSTEM_PYTHON, {}
    return "/opt/python/bin/python3", {"/opt/python": Path(sys.base_prefix)}


PYTHON, PYTHON_BINDS = _sandbox_python()
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp/home"}


def _sandbox_problem() -> str | None:
    try:
        check_sandbox()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


SANDBOX_PROBLEM = _sandbox_problem()
needs_sandbox = pytest.mark.skipif(SANDBOX_PROBLEM is not None,
                                   reason=f"no sandbox on this machine: {SANDBOX_PROBLEM}")


def policy(**limits: float) -> SandboxPolicy:
    """A plain policy with generous defaults, overridden per test."""
    base: dict[str, float] = {"wall_s": 20, "cpu_s": 20, "memory_bytes": 1 << 30,
                              "processes": 128}
    return SandboxPolicy(limits=ResourceLimits(**{**base, **limits}), env=dict(BASE_ENV),
                         ro_binds=PYTHON_BINDS)


def readable_dir(path: Path) -> Path:
    """A directory the sandbox user may read (pytest's tmp dirs are 0700)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def pids_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (other than this test process)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue  # exited while we looked
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique word to put in a sandboxed argv; any process still carrying it at teardown
    (i.e. a test failed) is killed by pid."""
    word = f"poi-test-{uuid.uuid4().hex}"
    yield word
    for pid in pids_with(word):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def assert_tree_gone(marker: str) -> None:
    """Nothing the run started survives it: checked the moment run_sandboxed returns."""
    assert pids_with(marker) == [], "sandboxed processes outlived run_sandboxed"


# --- ordinary runs -------------------------------------------------------------------------


@needs_sandbox
def test_exit_status_and_both_streams_are_reported(marker: str) -> None:
    result = run_sandboxed(["sh", "-c", "echo out; echo err >&2; exit 3", marker],
                           policy=policy())
    assert isinstance(result, SandboxResult)
    assert (result.returncode, result.signal) == (3, None)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert not result.ok and not result.timed_out and result.limit_hit is None
    assert not result.truncated and not result.unsandboxed
    assert result.wall_s > 0
    assert_tree_gone(marker)


@needs_sandbox
def test_success_is_ok() -> None:
    result = run_sandboxed(["true"], policy=policy())
    assert result.ok and result.returncode == 0


@needs_sandbox
def test_death_by_signal_is_reported_as_128_plus_n() -> None:
    result = run_sandboxed(["sh", "-c", "kill -SEGV $$"], policy=policy())
    assert (result.returncode, result.signal) == (128 + signal.SIGSEGV, signal.SIGSEGV)
    assert result.stderr == b"", "job-control chatter from the wrapper leaked into stderr"


@needs_sandbox
def test_missing_command_exits_127_with_a_message() -> None:
    result = run_sandboxed(["no-such-command-anywhere"], policy=policy())
    assert result.returncode == 127
    assert b"no-such-command-anywhere" in result.stderr


@needs_sandbox
def test_environment_is_exactly_the_policys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POI_HOST_ONLY_SECRET", "must-not-leak")
    env = {"PATH": "/usr/bin:/bin", "ONLY_THIS": "yes"}
    result = run_sandboxed(["env"], policy=SandboxPolicy(env=env))
    seen = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert b"must-not-leak" not in result.stdout
    assert set(seen) - {"PWD"} == set(env)
    assert {k: seen[k] for k in env} == env


@needs_sandbox
def test_working_directory_defaults_to_the_workspace(tmp_path: Path) -> None:
    workspace = readable_dir(tmp_path / "ws")
    (workspace / "Cargo.toml").write_text("[workspace]\n")
    result = run_sandboxed(["sh", "-c", "pwd; ls"], policy=policy(), workspace=workspace)
    assert result.stdout == f"{WORKSPACE_DIR}\nCargo.toml\n".encode()
    other = run_sandboxed(["pwd"], policy=policy(), workspace=workspace, cwd="/tmp")
    assert other.stdout == b"/tmp\n"


@needs_sandbox
def test_workspace_is_read_only_and_writable_binds_are_writable(tmp_path: Path) -> None:
    workspace = readable_dir(tmp_path / "ws")
    (workspace / "src.txt").write_text("source")
    build = tmp_path / "build"
    build.mkdir()
    script = ("echo built > /poi/target/out.txt && "
              "if echo x > /poi/ws/src.txt 2>/dev/null; then echo WROTE-WORKSPACE; fi")
    result = run_sandboxed(["sh", "-c", script], policy=policy(), workspace=workspace,
                           writable={BUILD_DIR: build})
    assert result.ok, result.stderr
    assert b"WROTE-WORKSPACE" not in result.stdout
    assert (build / "out.txt").read_text() == "built\n"
    assert (workspace / "src.txt").read_text() == "source"


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop only happens when the node is root")
def test_command_runs_unprivileged_without_capabilities(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    result = run_sandboxed(["sh", "-c", "id -u; grep CapEff /proc/self/status; touch /poi/t/f"],
                           policy=policy(), writable={"/poi/t": build})
    lines = result.stdout.decode().split("\n")
    assert lines[0] == str(SANDBOX_UID)
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert (build / "f").stat().st_uid == SANDBOX_UID, "host sees the file as the sandbox user's"


@needs_sandbox
def test_runs_from_several_threads_do_not_interfere(tmp_path: Path) -> None:
    results: dict[int, SandboxResult] = {}
    dirs = {i: tmp_path / f"b{i}" for i in range(4)}

    def work(i: int) -> None:
        dirs[i].mkdir()
        results[i] = run_sandboxed(
            ["sh", "-c", f"echo {i} > /poi/target/id; sleep 0.2; cat /poi/target/id"],
            policy=policy(), writable={BUILD_DIR: dirs[i]})

    threads = [threading.Thread(target=work, args=(i,)) for i in dirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {i: r.stdout for i, r in results.items()} == {i: f"{i}\n".encode() for i in dirs}


@needs_sandbox
def test_check_sandbox_names_the_bubblewrap_version() -> None:
    assert check_sandbox().startswith("bubblewrap 0.")


# --- Rust inside ---------------------------------------------------------------------------

TINY_LOCK = """# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "tiny"
version = "0.1.0"
"""


@needs_sandbox
def test_cargo_builds_a_std_only_crate_offline_and_runs_it(tmp_path: Path) -> None:
    try:
        toolchain = detect_toolchain()
    except ToolchainError as exc:
        pytest.fail(f"no Rust toolchain (a requirement of the suite): {exc}")
    workspace = readable_dir(tmp_path / "tiny")
    readable_dir(workspace / "src")
    (workspace / "Cargo.toml").write_text(
        '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n')
    (workspace / "Cargo.lock").write_text(TINY_LOCK)
    (workspace / "src" / "main.rs").write_text(
        'fn main() { println!("tiny {}", std::env::args().nth(1).unwrap_or_default()); }\n')
    build = tmp_path / "target"
    build.mkdir()
    rust = SandboxPolicy.rust(toolchain.sysroot, ResourceLimits(wall_s=300, cpu_s=600))

    built = run_sandboxed(["cargo", "build", "--release", "--offline", "--locked"],
                          policy=rust, workspace=workspace, writable={BUILD_DIR: build})
    assert built.ok, built.stderr.decode()
    assert (build / "release" / "tiny").is_file()
    ran = run_sandboxed([f"{BUILD_DIR}/release/tiny", "ran"], policy=rust, workspace=workspace,
                        writable={BUILD_DIR: build})
    assert ran.stdout == b"tiny ran\n"
    version = run_sandboxed(["rustc", "--version"], policy=rust)
    assert version.stdout.decode().strip() == toolchain.rustc, "the sandbox runs the attested rustc"


# --- configuration and availability errors -------------------------------------------------


def test_missing_bwrap_raises_an_error_naming_the_package() -> None:
    broken = SandboxPolicy(bwrap="/nonexistent/bin/bwrap")
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap"):
        run_sandboxed(["true"], policy=broken)


@needs_sandbox
def test_a_sandbox_that_cannot_be_set_up_raises_instead_of_returning() -> None:
    with pytest.raises(SandboxSetupError, match="chdir"):
        run_sandboxed(["true"], policy=policy(), cwd="/no/such/dir")


@pytest.mark.parametrize(("writable", "match"), [
    ({f"{WORKSPACE_DIR}/target": "build"}, "overlap"),
    ({"relative/path": "build"}, "absolute path"),
    ({"/usr/local/x": "build"}, "overlaps /usr"),
    ({"/poi/out": "missing"}, "does not exist"),
])
def test_refused_binds_name_the_problem(tmp_path: Path, writable: dict[str, str],
                                        match: str) -> None:
    workspace = readable_dir(tmp_path / "ws")
    (tmp_path / "build").mkdir()
    binds = {inside: tmp_path / host for inside, host in writable.items()}
    with pytest.raises(SandboxConfigError, match=match):
        run_sandboxed(["true"], policy=policy(), workspace=workspace, writable=binds)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root node drops to the sandbox uid")
def test_a_workspace_the_sandbox_user_cannot_read_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private-ws"
    private.mkdir(mode=0o700)
    with pytest.raises(SandboxConfigError, match="chmod o\\+rX"):
        run_sandboxed(["true"], policy=policy(), workspace=private)


@pytest.mark.parametrize("argv", [[], ["with\0nul"], "sh -c true"])
def test_malformed_argv_is_refused(argv: object) -> None:
    with pytest.raises(SandboxConfigError, match="argv"):
        run_sandboxed(argv, policy=policy())  # type: ignore[arg-type]


def test_malformed_environment_is_refused() -> None:
    with pytest.raises(SandboxConfigError, match="environment variable"):
        run_sandboxed(["true"], policy=SandboxPolicy(env={"A=B": "c"}))


def test_limits_are_validated() -> None:
    with pytest.raises(SandboxConfigError, match="processes"):
        ResourceLimits(processes=0)
    with pytest.raises(SandboxConfigError, match="output_drain_bytes"):
        ResourceLimits(output_bytes=10, output_drain_bytes=5)


def test_step_limits_come_from_the_target() -> None:
    limits = Limits(build_timeout_s=300, gate_timeout_s=100, bench_timeout_s=50, memory_mb=2048)
    build = ResourceLimits.for_step(limits, "build", cpus=4)
    bench = ResourceLimits.for_step(limits, "bench", cpus=4)
    assert (build.wall_s, build.cpu_s, build.memory_bytes) == (300, 1200, 2048 << 20)
    assert (bench.wall_s, bench.cpu_s) == (50, 200)
    assert bench.file_bytes < build.file_bytes
    with pytest.raises(SandboxConfigError, match="unknown step"):
        ResourceLimits.for_step(limits, "deploy")


# --- the unsafe escape hatch ---------------------------------------------------------------


def test_unsafe_mode_warns_every_time_and_still_applies_limits(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, marker: str) -> None:
    if not shutil.which("prlimit", path="/usr/bin:/bin"):
        pytest.skip("prlimit (util-linux) missing")
    workspace = readable_dir(tmp_path / "ws")
    unsafe = SandboxPolicy(limits=ResourceLimits(wall_s=1, output_bytes=100),
                           env=dict(BASE_ENV), unsafe_no_sandbox=True)
    with caplog.at_level(logging.WARNING, logger="verifier.sandbox"):
        first = run_sandboxed(["sh", "-c", "pwd; head -c 1000 /dev/zero", marker],
                              policy=unsafe, workspace=workspace)
        second = run_sandboxed(["sh", "-c", "sleep 30", marker], policy=unsafe)
    warnings = [r for r in caplog.records if "WITHOUT A SANDBOX" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    assert first.unsandboxed and second.unsandboxed
    assert first.stdout.startswith(f"{workspace}\n".encode()), "inside paths map to the host's"
    assert first.stdout_truncated and len(first.stdout) == 100
    assert second.timed_out and second.limit_hit == "timeout"
    assert pids_with(marker) == []


# --- a node that does not run as root ------------------------------------------------------

NON_ROOT_DRIVER = r"""
import json, sys
import poi_sandbox as sb
policy = sb.SandboxPolicy(limits=sb.ResourceLimits(wall_s=20, processes=16),
                          env={"PATH": "/usr/bin:/bin"})
try:
    sb.check_sandbox()
except sb.SandboxUnavailable as exc:
    print(json.dumps({"unavailable": str(exc)}))
    sys.exit(0)
def run(script):
    result = sb.run_sandboxed(["sh", "-c", script, sys.argv[1]], policy=policy)
    return [result.returncode, result.stdout.decode(), result.stderr.decode()]
print(json.dumps({
    "id": run("id -u"),
    "write_root": run("touch /owned 2>/dev/null && echo WROTE; touch /tmp/ok && echo tmp-ok"),
    "userns": run("unshare --user true 2>/dev/null && echo NESTED || echo refused"),
    "net": run("ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1"),
    "forks": run("for i in $(seq 1 40); do sleep 5 & done; wait"),
}))
"""


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                    reason="needs root (to become another user) and /usr/bin/python3")
def test_a_node_not_running_as_root_gets_the_same_containment(marker: str) -> None:
    """Without root, bwrap makes the user namespace itself; the limits and views still hold."""
    import subprocess
    import tempfile

    import verifier.sandbox

    with tempfile.TemporaryDirectory(dir="/tmp", prefix="poi-nonroot-") as tmp:
        os.chmod(tmp, 0o755)
        shutil.copy(verifier.sandbox.__file__, Path(tmp) / "poi_sandbox.py")
        (Path(tmp) / "driver.py").write_text(NON_ROOT_DRIVER)
        done = subprocess.run([SYSTEM_PYTHON, "-B", "-s", "driver.py", marker], cwd=tmp,
                              user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[],
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": tmp},
                              capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    import json

    seen = json.loads(done.stdout)
    if "unavailable" in seen:
        pytest.skip(f"unprivileged bubblewrap unavailable here: {seen['unavailable']}")
    assert seen["id"][1] == f"{SANDBOX_UID}\n"
    assert seen["write_root"][1] == "tmp-ok\n", "the sandbox root must be read-only"
    assert seen["userns"][1] == "refused\n"
    assert seen["net"][1].split() == ["lo"]
    assert "fork" in seen["forks"][2] or "Resource temporarily unavailable" in seen["forks"][2]
    assert pids_with(marker) == []
