"""Hostile programs stay inside the sandbox (DESIGN §11; docs/PROTOCOL.md §Sandbox).

Each test runs a real attack in a real sandbox and then checks the host: nothing written,
nothing read, no connection received, the machine still works, and no process the attack
started outlives ``run_sandboxed`` (found by a unique marker in the argv; fork() keeps it).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verifier.sandbox import BUILD_DIR, ResourceLimits, SandboxPolicy, run_sandboxed

from .test_sandbox import (
    BASE_ENV,
    PYTHON,
    PYTHON_BINDS,
    assert_tree_gone,
    marker,
    needs_sandbox,
    pids_with,
    policy,
    readable_dir,
)

pytestmark = [needs_sandbox]
__all__ = ["marker"]  # the fixture, imported so pytest finds it here


def run_program(tmp_path: Path, source: str, marker: str, *, limits: dict[str, float] | None = None,
                writable: dict[str, Path] | None = None, args: tuple[str, ...] = ()):
    """Run a Python program from a fresh read-only workspace; return (result, workspace)."""
    workspace = readable_dir(tmp_path / "ws")
    (workspace / "prog.py").write_text(source)
    result = run_sandboxed([PYTHON, "-I", "/poi/ws/prog.py", marker, *args],
                           policy=policy(**(limits or {})), workspace=workspace,
                           writable=writable or {})
    return result, workspace


def tree_digest(root: Path) -> str:
    """Every path, mode and content under root."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}\0{info.st_mode}\0".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --- network -------------------------------------------------------------------------------

NETWORK_PROGRAM = r"""
import json, socket, sys
port = int(sys.argv[2])
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect((host, port))
    s.sendall(b"escaped")
attempt("loopback", lambda: connect("127.0.0.1", port))
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
attempt("dns-server", lambda: connect("8.8.8.8", 53))
attempt("public", lambda: connect("1.1.1.1", 443))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("udp", lambda: udp.sendto(b"x", ("9.9.9.9", 53)))
out["interfaces"] = [name for _, name in socket.if_nameindex()]
print(json.dumps(out))
"""


def test_network_is_unreachable_from_inside(tmp_path: Path, marker: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    try:
        port = listener.getsockname()[1]
        result, _ = run_program(tmp_path, NETWORK_PROGRAM, marker, args=(str(port),))
        assert result.ok, result.stderr
        seen = json.loads(result.stdout)
        for name in ("loopback", "dns", "dns-server", "public", "udp"):
            assert seen[name] != "ok", f"{name} reached the network: {seen}"
        assert "ConnectionRefused" in seen["loopback"], "the sandbox has its own loopback"
        assert seen["interfaces"] == ["lo"]
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected to the host's listener
    finally:
        listener.close()
    assert_tree_gone(marker)


# --- files ---------------------------------------------------------------------------------

WRITE_PROGRAM = r"""
import json, os, sys
targets = json.loads(sys.argv[2])
out = {}
for path in targets:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("escaped")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""


def test_writes_outside_the_writable_binds_never_reach_the_host(tmp_path: Path,
                                                               marker: str) -> None:
    workspace = readable_dir(tmp_path / "ws")
    (workspace / "Cargo.toml").write_text("[workspace]\n")
    (workspace / "prog.py").write_text(WRITE_PROGRAM)
    before_ws, before_parent = tree_digest(workspace), sorted(os.listdir(tmp_path))
    name = f"escape-{marker}"
    host_home = Path(os.path.expanduser("~"))
    inside_only = [f"/tmp/{name}", f"/tmp/home/{name}"]  # private tmpfs: allowed, then gone
    refused = [f"/poi/ws/{name}", "/poi/ws/Cargo.toml", f"/poi/{name}", f"/{name}",
               f"/etc/{name}", f"/usr/{name}", f"/dev/shm/{name}", f"{host_home}/{name}"]
    # The host's own paths of the workspace and its parent: whatever happens to them inside
    # (under the private /tmp, they may even be created there), the host must not change.
    host_paths = [f"{workspace}/{name}", f"{tmp_path}/{name}"]
    result = run_sandboxed([PYTHON, "-I", "/poi/ws/prog.py", marker,
                            json.dumps(inside_only + refused + host_paths)],
                           policy=policy(), workspace=workspace)
    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    assert all(seen[p] == "written" for p in inside_only), seen
    assert {p: seen[p] for p in refused if seen[p] == "written"} == {}
    assert not Path(f"/tmp/{name}").exists(), "the host's /tmp was written"
    assert not (host_home / name).exists(), "the host's HOME was written"
    assert tree_digest(workspace) == before_ws, "the workspace changed"
    assert sorted(os.listdir(tmp_path)) == before_parent, "the workspace's parent changed"
    assert_tree_gone(marker)


SECRET_PROGRAM = r"""
import json, os, sys
secret, host_key = sys.argv[2].encode(), sys.argv[3]
found = []
for top in os.listdir("/"):
    if top in ("proc", "sys", "usr", "dev") or os.path.islink("/" + top):
        continue  # /usr is the host's public system files; /bin, /lib... are links into it
    for dirpath, dirnames, filenames in os.walk("/" + top):
        if dirpath.startswith("/opt/python"):
            continue  # the interpreter running this, when the host has no /usr/bin/python3
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                with open(path, "rb") as f:
                    if secret in f.read():
                        found.append(path)
            except OSError:
                pass
with open("/proc/1/cmdline", "rb") as f:
    init_cmdline = f.read().decode(errors="replace")
print(json.dumps({
    "found": found,
    "key_visible": os.path.exists(host_key),
    "host_dirs": [d for d in ("/root", "/home", "/work", "/var", "/srv", "/mnt", "/opt/rust",
                              "/run", "/boot", "/sys") if os.path.exists(d)],
    "init_cmdline": init_cmdline,
    "top": sorted(os.listdir("/")),
}))
"""


def test_node_keys_and_host_directories_are_invisible(tmp_path: Path, marker: str) -> None:
    secret = f"SECRET-{marker}"
    node = tmp_path / "node-data"
    (node / "keys").mkdir(parents=True)
    key = node / "keys" / "node.key"
    key.write_text(secret)
    key.chmod(0o644)  # even a world-readable key must not be reachable
    result, _ = run_program(tmp_path, SECRET_PROGRAM, marker, args=(secret, str(key)))
    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    assert seen["found"] == [] and not seen["key_visible"]
    assert seen["host_dirs"] == []
    expected_top = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "poi", "proc",
                    "sbin", "tmp", "usr"} | ({"opt"} if PYTHON_BINDS else set())
    assert set(seen["top"]) <= expected_top
    # bwrap's options (which name the workspace's host path) are not in /proc/1/cmdline.
    assert f"{tmp_path}/ws" not in seen["init_cmdline"], "a host path leaks via /proc/1/cmdline"
    assert_tree_gone(marker)


# --- processes -----------------------------------------------------------------------------

FORK_BOMB = r"""
import os, sys
failed = False
while True:
    try:
        os.fork()
    except OSError as exc:
        if not failed:
            failed = True
            print("fork refused:", exc, file=sys.stderr, flush=True)
"""


def test_fork_bomb_is_contained_and_cleaned_up(tmp_path: Path, marker: str) -> None:
    limit = 48
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, len(pids_with(marker)))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, _ = run_program(tmp_path, FORK_BOMB, marker,
                                limits={"wall_s": 2, "processes": limit})
    finally:
        stop.set()
        watcher.join()
    assert result.timed_out and result.limit_hit == "timeout"
    assert b"Resource temporarily unavailable" in result.stderr, "the process limit never bit"
    # The outer bwrap and the sandbox's pid 1 carry the marker too; the rest count against it.
    assert 2 < peak <= limit + 2, f"saw {peak} processes for a limit of {limit}"
    assert_tree_gone(marker)
    assert subprocess.run(["true"], check=False).returncode == 0, "the host can still fork"


DAEMON = r"""
import os, signal, sys, time
read_end, write_end = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        os.write(write_end, b"up")
        while True:
            time.sleep(1)
    os._exit(0)
os.read(read_end, 2)  # the grandchild daemon is running
print("daemon up", flush=True)
if len(sys.argv) > 2:  # and this process ignores SIGTERM and never ends
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
"""


def test_double_forked_daemon_dies_when_the_command_exits(tmp_path: Path, marker: str) -> None:
    result, _ = run_program(tmp_path, DAEMON, marker)
    assert result.ok and result.stdout == b"daemon up\n"
    assert_tree_gone(marker)


def test_sigterm_ignoring_command_and_its_daemon_die_at_the_timeout(tmp_path: Path,
                                                                   marker: str) -> None:
    result, _ = run_program(tmp_path, DAEMON, marker, limits={"wall_s": 1.5},
                            args=("stay",))
    assert result.stdout == b"daemon up\n"
    assert result.timed_out and result.signal == signal.SIGKILL
    assert_tree_gone(marker)


# --- CPU, memory, output, files ------------------------------------------------------------


def test_endless_loop_is_killed_at_the_wall_clock(tmp_path: Path, marker: str) -> None:
    started = time.monotonic()
    result, _ = run_program(tmp_path, "while True:\n    pass\n", marker,
                            limits={"wall_s": 1.5, "cpu_s": 60})
    elapsed = time.monotonic() - started
    assert result.timed_out and result.limit_hit == "timeout"
    assert result.signal == signal.SIGKILL
    assert 1.5 <= elapsed < 1.5 + 5
    assert_tree_gone(marker)


@pytest.mark.parametrize("ignores_sigxcpu", [False, True])
def test_cpu_spinner_is_killed_by_rlimit_cpu(tmp_path: Path, marker: str,
                                             ignores_sigxcpu: bool) -> None:
    source = ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
              if ignores_sigxcpu else "") + "while True:\n    pass\n"
    result, _ = run_program(tmp_path, source, marker, limits={"wall_s": 30, "cpu_s": 1})
    assert not result.timed_out and result.limit_hit == "cpu"
    # SIGXCPU at the soft limit; one that ignores it gets SIGKILL at the hard limit.
    assert result.signal == (signal.SIGKILL if ignores_sigxcpu else signal.SIGXCPU)
    # rusage samples CPU time more coarsely than the kernel enforces RLIMIT_CPU: roughly 1 s.
    assert result.cpu_s >= 0.5 and result.wall_s < 15
    assert_tree_gone(marker)


MEMORY_BOMB = r"""
import sys
chunks = []
try:
    while True:
        chunk = bytearray(32 << 20)
        chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page
        chunks.append(chunk)
except MemoryError:
    print(len(chunks) * 32, flush=True)
if len(sys.argv) > 2:
    bytearray(8 << 30)  # one giant allocation, not caught
"""


def test_memory_bomb_is_stopped_by_the_address_space_limit(tmp_path: Path, marker: str) -> None:
    result, _ = run_program(tmp_path, MEMORY_BOMB, marker,
                            limits={"memory_bytes": 384 << 20}, args=("giant",))
    got_mib = int(result.stdout)
    assert 0 < got_mib < 384, f"allocated {got_mib} MiB under a 384 MiB limit"
    assert result.returncode == 1 and b"MemoryError" in result.stderr
    assert_tree_gone(marker)


def test_endless_output_is_capped_and_the_flood_is_cut_off(marker: str) -> None:
    limits = ResourceLimits(output_bytes=64 << 10, output_drain_bytes=4 << 20, wall_s=30)
    result = run_sandboxed(["sh", "-c", "yes flood", marker],
                           policy=SandboxPolicy(limits=limits, env=dict(BASE_ENV)))
    assert result.limit_hit == "output" and not result.timed_out
    assert len(result.stdout) == 64 << 10 and result.stdout_truncated
    assert result.stdout.startswith(b"flood\nflood\n")
    assert result.stdout_total > 4 << 20
    assert result.wall_s < 10
    assert_tree_gone(marker)


def test_large_finite_output_keeps_the_head_and_counts_the_rest(marker: str) -> None:
    limits = ResourceLimits(output_bytes=1000, output_drain_bytes=64 << 20)
    result = run_sandboxed(
        ["sh", "-c", "head -c 8000000 /dev/zero; head -c 3000000 /dev/zero >&2", marker],
        policy=SandboxPolicy(limits=limits, env=dict(BASE_ENV)))
    assert result.ok, "draining within the cap lets the command finish normally"
    assert (len(result.stdout), result.stdout_total) == (1000, 8_000_000)
    assert (len(result.stderr), result.stderr_total) == (1000, 3_000_000)
    assert result.stdout_truncated and result.stderr_truncated
    assert_tree_gone(marker)


def test_huge_file_write_is_cut_by_rlimit_fsize(tmp_path: Path, marker: str) -> None:
    build = tmp_path / "build"
    build.mkdir()
    limit = 1 << 20
    result = run_sandboxed(
        ["sh", "-c", f"head -c {64 << 20} /dev/zero > {BUILD_DIR}/big", marker],
        policy=policy(file_bytes=limit), writable={BUILD_DIR: build})
    assert result.signal == signal.SIGXFSZ and result.limit_hit == "file_size"
    assert (build / "big").stat().st_size <= limit
    # Python ignores SIGXFSZ: its writes fail with EFBIG instead, and nothing grows either.
    python = run_sandboxed([PYTHON, "-c", f"open('{BUILD_DIR}/py', 'wb').write(bytes({2 * limit}))",
                            marker], policy=policy(file_bytes=limit), writable={BUILD_DIR: build})
    assert python.returncode == 1 and b"File too large" in python.stderr
    assert (build / "py").stat().st_size <= limit
    assert_tree_gone(marker)


def test_private_tmp_is_size_capped(marker: str) -> None:
    script = "for i in $(seq 1 64); do head -c 1048576 /dev/zero > /tmp/f$i || exit 9; done"
    result = run_sandboxed(["sh", "-c", script, marker], policy=policy(tmp_bytes=8 << 20))
    assert result.returncode == 9 and b"No space left on device" in result.stderr
    assert_tree_gone(marker)


def test_sandbox_cannot_create_user_namespaces_or_regain_root(marker: str) -> None:
    if not os.path.exists("/usr/bin/unshare"):
        pytest.skip("unshare (util-linux) missing")
    result = run_sandboxed(
        ["sh", "-c", "unshare --user --map-root-user id -u || echo refused", marker],
        policy=policy())
    assert b"refused" in result.stdout
    assert_tree_gone(marker)


def test_leftover_check_would_see_a_surviving_process(marker: str) -> None:
    """The leftover check itself works: a host process carrying the marker is seen."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        deadline = time.monotonic() + 10
        # The command line appears a moment after exec returns to Popen.
        while pids_with(marker) != [proc.pid] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pids_with(marker) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    assert pids_with(marker) == []
