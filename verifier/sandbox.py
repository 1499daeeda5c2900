"""Run one untrusted command under bubblewrap (DESIGN §5.2 and §11; docs/PROTOCOL.md §Sandbox).

A proposer's code is hostile until the sandbox says otherwise: its build scripts, gate and
benchmark run here. One call runs one argv and returns what happened::

    policy = SandboxPolicy.rust(toolchain.sysroot, ResourceLimits.for_step(target.limits, "build"))
    result = run_sandboxed(
        ["cargo", "build", "--release", "--offline", "--locked"],
        policy=policy,
        workspace=workspace_dir,                 # read-only at /poi/ws
        writable={BUILD_DIR: build_dir},         # read-write at /poi/target (CARGO_TARGET_DIR)
    )
    if result.timed_out: ...                     # verdict `timeout`
    elif not result.ok: ...                      # verdict `build_failed`

What the command sees
---------------------
A fresh root holding only: ``/usr`` and the ``/bin``, ``/sbin``, ``/lib*`` links (read-only), a
few entries of ``/etc`` a compiler needs (``DEFAULT_ETC``, read-only), a minimal ``/dev``, its own
``/proc`` (its pid namespace only), a private size-capped ``/tmp``, and the caller's binds: the
workspace read-only at the fixed path ``/poi/ws`` (so every verifier builds byte-identical paths
into its binaries), read-only extras such as the Rust toolchain at ``/opt/rust``, and read-write
only the directories the caller lists. Everything else of the host (``/root``, ``/home``,
``/work``, ``/var``, ``/srv``, ``/mnt``, the host's ``/tmp``, the node's data directory and keys)
does not exist inside. The root itself is remounted read-only. The environment is exactly the
policy's ``env`` (plus ``PWD``). bwrap's options reach it through a memfd (``--args``), so the
host paths they name are not readable from ``/proc/1/cmdline``. Namespaces: mount, pid,
network (loopback only), ipc, uts, cgroup (when the kernel has it) and user.

How the limits hold (and why this way)
--------------------------------------
* **Processes.** ``RLIMIT_NPROC`` does not bind uid 0 (the kernel exempts the root user even
  without capabilities), and ``bwrap --unshare-user --uid 65534`` started by root maps the
  sandbox uid back to host uid 0, so it does not help either. When the node runs as root, bwrap
  runs privileged (so it can bind paths such as ``/root/.rustup`` that only root can reach), then
  ``setpriv`` drops the command to the unprivileged host uid 65534 and ``unshare --user`` gives it
  a user namespace of its own before ``prlimit`` sets the limits. The kernel (>= 5.14) counts
  ``RLIMIT_NPROC`` per (user namespace, uid), so each sandbox has its own budget even though all
  run as uid 65534, and the uid is unmapped inside, so the command can neither create nested user
  namespaces nor regain capabilities (bwrap also sets no_new_privs). When the node is not root,
  bwrap itself creates the user namespace and the same ``prlimit`` applies. The cgroup v1 pids
  controller was not used: it is not writable in many containers and CI runners, while this
  works wherever bubblewrap does.
* **CPU, memory, files.** ``prlimit`` inside the sandbox sets ``RLIMIT_CPU`` (soft; the hard limit
  one second later is SIGKILL), ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE`` and
  ``RLIMIT_CORE = 0``. All of them are per process: a build of N parallel rustc processes may use
  N times ``memory_bytes``.
* **Wall clock, and killing the whole tree.** Everything runs in a pid namespace whose pid 1 is
  a small bash wrapper (``--as-pid-1``) that runs the command, reaps orphans and exits with the
  command's status. Whenever pid 1 exits, the kernel kills every process left in the namespace
  (daemonised, double-forked and SIGTERM-ignoring ones included) and bwrap exits only after
  that. On timeout (or runaway output) the supervisor SIGKILLs pid 1 through a pidfd (checked
  to be bwrap's child, so a recycled pid is never signalled) with the same effect; the outer
  bwrap's process group is the fallback. ``--die-with-parent`` covers the node dying mid-run.
  ``run_sandboxed`` returns only once the namespace is empty.
* **CPU time** is the rusage of the reaped tree: every process that ended before pid 1 did.
  Processes killed *with* the namespace (at a timeout) are auto-reaped by the kernel and not
  counted.
* **Output.** stdout and stderr are read concurrently; the first ``output_bytes`` of each are
  kept (``*_truncated`` marks a cut) and the rest is read and discarded so the child never blocks
  on a full pipe, up to ``output_drain_bytes``; past that the tree is killed and
  ``limit_hit == "output"`` (otherwise a program printing forever would cost the verifier a core
  until the timeout).
* **Disk.** ``/tmp`` is a tmpfs capped at ``tmp_bytes``; the root and every other mount are
  read-only. Writable binds are bounded only per file (``RLIMIT_FSIZE``): a command can fill the
  filesystem of a writable directory with many files. Give writable directories a filesystem
  (or quota) you can afford to fill.

Writable directories are handed to the sandbox user: when running as root they are (re)owned by
uid/gid 65534, recursively, before each run (no sandboxed process is alive then, so nothing can
race the walk, and symlinks are never followed).

Status reporting: a command killed by signal N is reported as exit status 128 + N, as shells
do; ``SandboxResult.signal`` is derived from that, so a command that itself exits with 128 + N
reads the same. ``limit_hit`` names the limit when it can be told from outside (timeout, cpu,
file_size, output); running out of processes or address space shows as the command's own failure
(EAGAIN from fork, a failed allocation) in its status and stderr.

A sandbox that cannot be set up (bwrap refuses a mount, say) raises ``SandboxSetupError``: the
wrapper reports on a private pipe just before it starts the command, so a setup failure is never
mistaken for the command's own exit status 1, nor can the command fake one.

``run_sandboxed`` blocks (run it in a thread from the node's event loop) and keeps no shared
state, so several calls may run at once; do not give two concurrent runs the same writable
directory. The thread that calls it must live until it returns (bwrap's --die-with-parent is
tied to the calling thread).

``unsafe_no_sandbox=True`` in the policy runs the command directly, for trusted local
experiments only: rlimits, timeout and output caps still apply, a loud warning is logged on
every call, and the result says ``unsandboxed``. It has no namespaces: the command sees the whole
host, runs as the node's user (``RLIMIT_NPROC`` does not bind root), and a process that leaves
the session (setsid) can outlive the timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for a type: this module stays standard-library only
    from protocol.objects import Limits

log = logging.getLogger(__name__)

# --- fixed paths inside every sandbox (identical on every verifier) ---
WORKSPACE_DIR = "/poi/ws"
"""The workspace, read-only."""
BUILD_DIR = "/poi/target"
"""Where the Rust policy points CARGO_TARGET_DIR; bind a writable host directory here."""
TOOLCHAIN_DIR = "/opt/rust"
"""The Rust toolchain (its sysroot: bin/cargo, bin/rustc, lib/...), read-only."""

SANDBOX_UID = 65534
SANDBOX_GID = 65534
"""nobody/nogroup: the host uid sandboxed commands run as when the node is root."""

MIN_BWRAP_VERSION = (0, 8, 0)
"""Needed for --size (capped tmpfs), --perms on --tmpfs and --disable-userns."""

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Bound read-only (directories) or recreated (merged-/usr symlinks) when the host has them."""
DEFAULT_ETC = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d")
"""Entries of /etc a toolchain needs: `cc` is /etc/alternatives/cc, and the dynamic loader's
cache. Not passwd, hosts, resolv.conf or anything naming the host."""
_RESERVED = (*SYSTEM_DIRS, "/etc", "/proc", "/dev", "/tmp")
"""Inside paths the caller cannot bind over or under."""

KILL_GRACE_S = 10.0
"""How long a killed sandbox may take to disappear before we escalate (it takes milliseconds)."""
EXIT_GRACE_S = 0.5
"""Unsafe mode only: how long to keep reading pipes held open by a leftover after the command
exits."""
_STEPS = ("build", "gate", "bench")


class SandboxError(Exception):
    """Base class of everything this module raises."""


class SandboxUnavailable(SandboxError):
    """This machine cannot run sandboxes (bubblewrap or util-linux missing or too old)."""


class SandboxSetupError(SandboxUnavailable):
    """bubblewrap started but could not build the sandbox; the message carries its stderr."""


class SandboxConfigError(SandboxError, ValueError):
    """A policy, bind, path, environment or argv that the sandbox refuses; says which and why."""


@dataclass(frozen=True)
class ResourceLimits:
    """Limits for one sandboxed command. All per process except the wall clock and output."""

    wall_s: float = 60.0
    """Wall-clock timeout of the whole run, sandbox setup included."""
    cpu_s: int = 60
    """RLIMIT_CPU per process (SIGXCPU at cpu_s, SIGKILL one second later)."""
    memory_bytes: int = 4 << 30
    """RLIMIT_AS per process."""
    file_bytes: int = 1 << 30
    """RLIMIT_FSIZE: the largest file a process may write."""
    processes: int = 256
    """RLIMIT_NPROC inside the sandbox's own user namespace: processes plus threads."""
    open_files: int = 4096
    """RLIMIT_NOFILE."""
    output_bytes: int = 1 << 20
    """Bytes of stdout, and of stderr, kept in the result (the head)."""
    output_drain_bytes: int = 64 << 20
    """Bytes of stdout, or of stderr, read at most; beyond this the sandbox is killed."""
    tmp_bytes: int = 256 << 20
    """Size of the private /tmp (a tmpfs: it is memory)."""

    def __post_init__(self) -> None:
        if not self.wall_s > 0:
            raise SandboxConfigError(f"limits.wall_s must be positive, got {self.wall_s!r}")
        for name in ("cpu_s", "memory_bytes", "file_bytes", "processes", "open_files",
                     "output_bytes", "output_drain_bytes", "tmp_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SandboxConfigError(f"limits.{name} must be a positive int, got {value!r}")
        if self.output_drain_bytes < self.output_bytes:
            raise SandboxConfigError("limits.output_drain_bytes must be >= limits.output_bytes")

    @classmethod
    def for_step(cls, limits: Limits, step: str, *, cpus: int | None = None) -> ResourceLimits:
        """The limits for one evaluation step (``build``, ``gate`` or ``bench``) of a target.

        The wall clock is the target's timeout for the step and the address space its
        ``memory_mb``. RLIMIT_CPU is a backstop behind the timeout (timeout x cores, so a
        legitimately parallel step never hits it first). The target's ``max_file_bytes`` caps
        *source* files, not build outputs, so it is not used here: builds may write 1 GiB files,
        gate and bench 64 MiB.
        """
        if step not in _STEPS:
            raise SandboxConfigError(f"unknown step {step!r}: expected one of {_STEPS}")
        cpus = cpus or os.cpu_count() or 1
        timeout = {"build": limits.build_timeout_s, "gate": limits.gate_timeout_s,
                   "bench": limits.bench_timeout_s}[step]
        return cls(
            wall_s=float(timeout),
            cpu_s=timeout * cpus,
            memory_bytes=limits.memory_mb << 20,
            file_bytes=(1 << 30) if step == "build" else (64 << 20),
            processes=max(256, 16 * cpus),
        )


@dataclass(frozen=True)
class SandboxPolicy:
    """What a sandboxed command gets: limits, its entire environment, extra read-only binds."""

    limits: ResourceLimits = field(default_factory=ResourceLimits)
    env: Mapping[str, str] = field(default_factory=lambda: {"PATH": "/usr/bin:/bin"})
    """The command's complete environment: nothing of the node's environment leaks in."""
    ro_binds: Mapping[str, Path] = field(default_factory=dict)
    """Inside path -> host path, read-only (e.g. TOOLCHAIN_DIR -> the toolchain's sysroot)."""
    etc: tuple[str, ...] = DEFAULT_ETC
    """Entries of the host's /etc exposed read-only (missing ones are skipped)."""
    uid: int = SANDBOX_UID
    gid: int = SANDBOX_GID
    hostname: str = "poi-sandbox"
    bwrap: str | None = None
    """Path of the bwrap binary; None searches PATH, then /usr/bin and /bin."""
    unsafe_no_sandbox: bool = False
    """Run without namespaces (trusted local experiments only; see the module docs)."""

    @classmethod
    def rust(cls, toolchain: Path, limits: ResourceLimits, *,
             env: Mapping[str, str] | None = None, **kwargs: object) -> SandboxPolicy:
        """A policy for cargo builds: the toolchain's sysroot at TOOLCHAIN_DIR, used directly.

        No rustup proxy runs inside: the verifier chooses the toolchain (and attests it), a
        workspace's rust-toolchain.toml cannot switch it, and nothing is ever downloaded.
        HOME and CARGO_HOME are empty directories on the private /tmp.
        """
        base = {
            "PATH": f"{TOOLCHAIN_DIR}/bin:/usr/bin:/bin",
            "HOME": "/tmp/home",
            "CARGO_HOME": "/tmp/cargo-home",
            "CARGO_TARGET_DIR": BUILD_DIR,
            "CARGO_NET_OFFLINE": "true",
            "CARGO_TERM_COLOR": "never",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
        }
        return cls(limits=limits, env={**base, **(env or {})},
                   ro_binds={TOOLCHAIN_DIR: Path(toolchain)}, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed command did."""

    argv: tuple[str, ...]
    returncode: int
    """Exit status as a shell reports it: 0-255, 128 + N for death by signal N."""
    signal: int | None
    """The signal that ended the command (derived from returncode > 128), or None."""
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_total: int
    """Bytes the command wrote to stdout (as far as we read before it ended)."""
    stderr_total: int
    timed_out: bool
    limit_hit: str | None
    """'timeout', 'cpu', 'file_size' or 'output' when a limit ended the run, else None."""
    wall_s: float
    cpu_s: float
    """User + system CPU of the run's processes that ended before the sandbox did (rusage of
    the reaped tree; processes killed with the sandbox at a timeout are not counted)."""
    unsandboxed: bool

    @property
    def ok(self) -> bool:
        """Exited 0 within every limit."""
        return self.returncode == 0 and not self.timed_out and self.limit_hit is None

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


@dataclass(frozen=True)
class _Mount:
    inside: str
    host: Path
    writable: bool


@dataclass(frozen=True)
class _Tools:
    bwrap: str
    prlimit: str
    bash: str
    env: str
    setpriv: str | None
    unshare: str | None


def run_sandboxed(
    argv: Sequence[str],
    *,
    policy: SandboxPolicy,
    workspace: Path | None = None,
    writable: Mapping[str, Path] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
) -> SandboxResult:
    """Run ``argv`` in a fresh sandbox and return its result; blocks until everything is gone.

    ``workspace`` is bound read-only at WORKSPACE_DIR; ``writable`` maps inside paths to host
    directories bound read-write; ``cwd`` is an inside path (default: the workspace, else /tmp);
    ``timeout_s`` overrides ``policy.limits.wall_s``. Raises SandboxConfigError for a refused
    configuration and SandboxUnavailable / SandboxSetupError when this machine cannot sandbox;
    anything the command itself does (fail, crash, hang, flood) comes back as a SandboxResult.
    """
    argv = _check_argv(argv)
    limits = policy.limits
    if timeout_s is not None:
        limits = dataclasses.replace(limits, wall_s=timeout_s)
    mounts = _plan_mounts(policy, workspace, writable or {})
    cwd = cwd or (WORKSPACE_DIR if workspace is not None else "/tmp")
    _check_inside_path("cwd", cwd, allow_reserved=True)
    env = _check_env(policy.env)
    if policy.unsafe_no_sandbox:
        return _run_unsafe(argv, limits, mounts, cwd, env)
    privileged = os.geteuid() == 0
    tools = _find_tools(policy.bwrap, privileged)
    if privileged:
        for mount in mounts:
            if mount.writable:
                _hand_over(mount.host, policy.uid, policy.gid)
            else:
                _check_world_readable(mount)
    return _run_bwrap(argv, policy, limits, mounts, cwd, env, tools, privileged)


def check_sandbox(bwrap: str | None = None) -> str:
    """Check that this machine can run sandboxes (start one); return bwrap's version line.

    Meant for node start-up, so a verifier that cannot sandbox says so before taking work.
    """
    tools = _find_tools(bwrap, os.geteuid() == 0)
    result = run_sandboxed(["true"], policy=SandboxPolicy(limits=ResourceLimits(wall_s=30),
                                                          bwrap=tools.bwrap))
    if not result.ok:
        raise SandboxSetupError(f"a trivial sandboxed command failed: {_describe(result)}")
    return "bubblewrap " + ".".join(map(str, _bwrap_version(tools.bwrap)))


# --- validation ----------------------------------------------------------------------------


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes) or not argv:
        raise SandboxConfigError("argv must be a non-empty list of strings")
    for arg in argv:
        if not isinstance(arg, str) or "\0" in arg:
            raise SandboxConfigError(f"argv items must be strings without NUL, got {arg!r}")
    return tuple(argv)


def _check_env(env: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise SandboxConfigError(f"environment variable name {key!r} is not valid")
        if not isinstance(value, str) or "\0" in value:
            raise SandboxConfigError(f"environment variable {key} must be a string without NUL")
        checked[key] = value
    return checked


def _check_inside_path(what: str, path: str, *, allow_reserved: bool = False) -> None:
    if (not isinstance(path, str) or not PurePosixPath(path).is_absolute()
            or str(PurePosixPath(path)) != path or ".." in PurePosixPath(path).parts
            or path == "/"):
        raise SandboxConfigError(
            f"{what}: {path!r} must be a normalised absolute path inside the sandbox, not '/'")
    if not allow_reserved:
        for reserved in _RESERVED:
            if _nested(path, reserved):
                raise SandboxConfigError(
                    f"{what}: {path} overlaps {reserved}, which the sandbox provides itself")


def _nested(a: str, b: str) -> bool:
    """Whether one of two inside paths is the other or lies below it."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _plan_mounts(policy: SandboxPolicy, workspace: Path | None,
                 writable: Mapping[str, Path]) -> list[_Mount]:
    mounts: list[_Mount] = []
    if workspace is not None:
        mounts.append(_Mount(WORKSPACE_DIR, Path(workspace), writable=False))
    mounts += [_Mount(inside, Path(host), writable=False)
               for inside, host in policy.ro_binds.items()]
    mounts += [_Mount(inside, Path(host), writable=True) for inside, host in writable.items()]
    for mount in mounts:
        kind = "writable bind" if mount.writable else "read-only bind"
        _check_inside_path(f"{kind} {mount.inside}", mount.inside)
        if not mount.host.is_absolute():
            raise SandboxConfigError(f"{kind} {mount.inside}: host path {mount.host} "
                                     "must be absolute")
        if not mount.host.exists():
            raise SandboxConfigError(f"{kind} {mount.inside}: host path {mount.host} "
                                     "does not exist")
        if mount.writable and (mount.host.is_symlink() or not mount.host.is_dir()):
            raise SandboxConfigError(f"{kind} {mount.inside}: host path {mount.host} "
                                     "must be a directory (not a symlink)")
    for i, a in enumerate(mounts):
        for b in mounts[i + 1:]:
            if _nested(a.inside, b.inside):
                raise SandboxConfigError(
                    f"binds {a.inside} and {b.inside} overlap: give each its own path (e.g. the "
                    f"build directory at {BUILD_DIR}, not inside the read-only workspace)")
    return sorted(mounts, key=lambda m: m.inside)


# --- tools ---------------------------------------------------------------------------------


def _find_tools(bwrap: str | None, privileged: bool) -> _Tools:
    """Locate bwrap and the util-linux helpers (which must be visible inside, under /usr)."""
    bwrap_path = bwrap or shutil.which("bwrap") or shutil.which("bwrap", path="/usr/bin:/bin")
    if not bwrap_path or not os.access(bwrap_path, os.X_OK):
        raise SandboxUnavailable(
            f"bubblewrap not found ({bwrap or 'bwrap on PATH'}): install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or set the node's bwrap path")
    version = _bwrap_version(bwrap_path)
    if version < MIN_BWRAP_VERSION:
        need = ".".join(map(str, MIN_BWRAP_VERSION))
        raise SandboxUnavailable(
            f"{bwrap_path} is bubblewrap {'.'.join(map(str, version))}; poi needs >= {need} "
            "(capped tmpfs, --disable-userns): upgrade the bubblewrap package")
    found = {name: shutil.which(name, path="/usr/bin:/bin")
             for name in ("prlimit", "bash", "env", "setpriv", "unshare")}
    needed = ("prlimit", "bash", "env", *(("setpriv", "unshare") if privileged else ()))
    missing = [name for name in needed if not found[name]]
    if missing:
        raise SandboxUnavailable(
            f"{', '.join(missing)} not found in /usr/bin or /bin: install util-linux and bash "
            "(Debian/Ubuntu: apt-get install util-linux bash)")
    return _Tools(bwrap=bwrap_path, prlimit=found["prlimit"], bash=found["bash"],  # type: ignore[arg-type]
                  env=found["env"],  # type: ignore[arg-type]
                  setpriv=found["setpriv"], unshare=found["unshare"])


@lru_cache(maxsize=8)
def _bwrap_version(path: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=10, env={},
                             check=False).stdout.decode(errors="replace")
    except OSError as exc:
        raise SandboxUnavailable(f"cannot run {path}: {exc}") from exc
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise SandboxUnavailable(f"{path} --version printed {out!r}: is it bubblewrap?")
    return tuple(int(part) for part in match.groups())


def _check_world_readable(mount: _Mount) -> None:
    """The sandbox user is not the node's user: a read-only bind must be readable by others.

    Only the top of the bind is checked (walking a whole toolchain on every run would cost more
    than it saves); files below keep their own modes, as tree entries (0644/0755) do.
    """
    mode = mount.host.stat().st_mode
    need = 0o005 if mount.host.is_dir() else 0o004
    if mode & need != need:
        raise SandboxConfigError(
            f"read-only bind {mount.inside}: {mount.host} (mode {mode & 0o777:o}) is not readable "
            f"by the sandbox user (uid {SANDBOX_UID}): make it world-readable (chmod o+rX), e.g. "
            "materialise workspaces into directories created with mode 0755")


def _hand_over(root: Path, uid: int, gid: int) -> None:
    """(Re)own a writable directory tree to the sandbox user, never following symlinks."""
    targets = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        targets += [os.path.join(dirpath, name) for name in (*dirnames, *filenames)]
    for path in targets:
        info = os.lstat(path)
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.lchown(path, uid, gid)


# --- the bwrap command line ----------------------------------------------------------------


def _prlimit_args(limits: ResourceLimits) -> list[str]:
    def both(value: int) -> str:
        return f"{value}:{value}"

    return [
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--as={both(limits.memory_bytes)}",
        f"--fsize={both(limits.file_bytes)}",
        f"--nproc={both(limits.processes)}",
        f"--nofile={both(limits.open_files)}",
        "--core=0:0",
    ]


def _bwrap_arguments(argv: Sequence[str], policy: SandboxPolicy, limits: ResourceLimits,
                     mounts: Sequence[_Mount], cwd: str, env: Mapping[str, str],
                     tools: _Tools, *, privileged: bool, info_fd: int,
                     ready_fd: int) -> list[str]:
    """bwrap's options, then ``--`` and the command: the whole sandbox layout is decided here
    (the only I/O is looking at which of SYSTEM_DIRS and DEFAULT_ETC the host has).

    The options travel through ``--args`` (a memfd), so the host paths they name cannot be read
    from the sandbox's /proc/1/cmdline; bwrap only takes the command from its real argv.
    """
    args = ["--unshare-ipc", "--unshare-pid", "--as-pid-1", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", policy.hostname, "--info-fd", str(info_fd)]
    if privileged:
        # setpriv (below) needs these to drop to the sandbox uid; they are gone after it.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in policy.etc:
        host = os.path.join("/etc", name)
        if os.path.exists(host):
            args += ["--ro-bind", host, host]
    args += ["--dev", "/dev", "--proc", "/proc",
             "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    made: set[str] = {"/", "/etc"}
    for mount in mounts:
        for parent in reversed(PurePosixPath(mount.inside).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.host), mount.inside]
    args += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    args += ["--", *_inner_chain(argv, policy, limits, tools, privileged, ready_fd)]
    return args


def _inner_chain(argv: Sequence[str], policy: SandboxPolicy, limits: ResourceLimits,
                 tools: _Tools, privileged: bool, ready_fd: int) -> list[str]:
    """What runs inside: drop to the sandbox uid in a user namespace of its own, set rlimits,
    then bash as the sandbox's pid 1 (bwrap --as-pid-1). bash reports 'set up' on ready_fd
    (closed before the command starts), runs the command, reaps orphans and exits with the
    command's status; its job messages ("Segmentation fault"...) go to /dev/null so stderr is
    the command's own, and ``env -u _`` keeps bash's own variables out of the command's
    environment (which is the policy's env plus PWD)."""
    chain: list[str] = []
    if privileged:
        chain += [tools.setpriv, f"--reuid={policy.uid}", f"--regid={policy.gid}",  # type: ignore[list-item]
                  "--clear-groups", "--", tools.unshare, "--user", "--"]
    chain += [tools.prlimit, *_prlimit_args(limits), "--"]
    script = (f"printf x >&{ready_fd} || exit 126; exec {ready_fd}>&- 3>&2 2>/dev/null; "
              f'unset SHLVL; {tools.env} -u _ -- "$@" 2>&3 3>&-; exit $?')
    chain += [tools.bash, "-c", script, "poi-sandbox", *argv]
    return chain


# --- running -------------------------------------------------------------------------------


class _Capture:
    """The head of one output stream, plus how much was written."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > self.keep


class _Supervisor:
    """Drives one child: reads its output, enforces wall clock and output caps, kills, reaps.

    The child (outer bwrap, or the command itself in unsafe mode) leads its own session. Once
    bwrap reports the host pid of the sandbox's pid 1 (``--info-fd``), killing means SIGKILL to
    it: the kernel empties the namespace and the outer bwrap exits after that. Before then (and
    in unsafe mode) it means SIGKILL to the child's process group.
    """

    def __init__(self, proc: subprocess.Popen[bytes], limits: ResourceLimits, *,
                 info_fd: int | None, ready_fd: int | None) -> None:
        self.proc = proc
        self.limits = limits
        self.selector = selectors.DefaultSelector()
        self.out = _Capture(limits.output_bytes)
        self.err = _Capture(limits.output_bytes)
        self.open_streams = 0
        for stream, capture in ((proc.stdout, self.out), (proc.stderr, self.err)):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream.fileno(), selectors.EVENT_READ, capture)
            self.open_streams += 1
        self.child_fd = os.pidfd_open(proc.pid)
        self.selector.register(self.child_fd, selectors.EVENT_READ, "exit")
        self.info_fd, self.info = info_fd, b""
        if info_fd is not None:
            self.selector.register(info_fd, selectors.EVENT_READ, "info")
        self.ready_fd, self.ready = ready_fd, ready_fd is None
        if ready_fd is not None:
            self.selector.register(ready_fd, selectors.EVENT_READ, "ready")
        self.init_fd: int | None = None
        self.exited = False
        self.killed: str | None = None
        self.killed_at = 0.0
        self.escalated = False

    def run(self) -> tuple[int, os.struct_rusage]:
        """Supervise until the child has exited and its output is drained; return status."""
        deadline = time.monotonic() + self.limits.wall_s
        linger: float | None = None
        try:
            while not (self.exited and self.open_streams == 0):
                now = time.monotonic()
                if self.killed is None and now >= deadline:
                    self.kill("timeout")
                if self.exited and linger is None:
                    linger = now + EXIT_GRACE_S
                if linger is not None and now >= linger:
                    break  # unsafe mode: a leftover holds the pipes; stop reading them
                if self.killed is not None and now >= self.killed_at + KILL_GRACE_S:
                    if self.escalated:
                        break  # SIGKILLed twice: stop reading, the blocking wait reaps it
                    self.escalated = True
                    self.kill_everything()
                    self.killed_at = now
                wake = min(deadline if self.killed is None else self.killed_at + KILL_GRACE_S,
                           linger if linger is not None else float("inf"))
                for key, _ in self.selector.select(max(0.0, wake - now)):
                    self.handle(key)
            _, status, usage = os.wait4(self.proc.pid, 0)
        except BaseException:
            self.kill_everything()
            self.proc.wait()
            raise
        finally:
            self.close()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.wait_init_gone()
        return self.proc.returncode, usage

    def handle(self, key: selectors.SelectorKey) -> None:
        fd, what = key.fd, key.data
        if what == "exit":
            self.exited = True
            self.selector.unregister(fd)
            return
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if isinstance(what, _Capture):
            if not chunk:
                self.selector.unregister(fd)
                self.open_streams -= 1
                return
            what.feed(chunk)
            if what.total > self.limits.output_drain_bytes and self.killed is None:
                self.kill("output")
        elif what == "ready":
            self.ready = self.ready or bool(chunk)
            self.selector.unregister(fd)
        elif what == "info":
            self.info += chunk
            if not chunk:
                self.selector.unregister(fd)
                self.watch_init()

    def watch_init(self) -> None:
        """Open a pidfd on the sandbox's init, checking it is still the outer bwrap's child
        (so a recycled pid can never be signalled)."""
        try:
            pid = int(json.loads(self.info)["child-pid"])
            init_fd = os.pidfd_open(pid)
        except (ValueError, KeyError, TypeError, OSError):
            return
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            ppid = -1
        if ppid != self.proc.pid:
            os.close(init_fd)
            return
        self.init_fd = init_fd
        if self.killed is not None:
            self.kill(self.killed)

    def kill(self, reason: str) -> None:
        if self.killed is None:
            self.killed, self.killed_at = reason, time.monotonic()
        if self.init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
        else:
            self.kill_everything()

    def kill_everything(self) -> None:
        """Last resort: SIGKILL the child's whole process group (bwrap's --die-with-parent then
        takes the sandbox's init with it)."""
        if self.killed is None:
            self.killed, self.killed_at = "error", time.monotonic()
        if self.init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_init_gone(self) -> None:
        """The namespace is empty once its init has exited; bwrap only exits after that, so
        this returns at once unless bwrap itself was killed."""
        if self.init_fd is None:
            return
        try:
            ready = selectors.DefaultSelector()
            ready.register(self.init_fd, selectors.EVENT_READ)
            ready.select(KILL_GRACE_S)
            ready.close()
        finally:
            os.close(self.init_fd)
            self.init_fd = None

    def close(self) -> None:
        self.selector.close()
        for fd in (self.child_fd, self.info_fd, self.ready_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _run_bwrap(argv: tuple[str, ...], policy: SandboxPolicy, limits: ResourceLimits,
               mounts: list[_Mount], cwd: str, env: dict[str, str], tools: _Tools,
               privileged: bool) -> SandboxResult:
    info_r, info_w = os.pipe2(os.O_CLOEXEC)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    args_fd = os.memfd_create("poi-bwrap-args", os.MFD_CLOEXEC)
    try:
        args = _bwrap_arguments(argv, policy, limits, mounts, cwd, env, tools,
                                privileged=privileged, info_fd=info_w, ready_fd=ready_w)
        split = args.index("--")
        os.write(args_fd, b"".join(arg.encode() + b"\0" for arg in args[:split]))
        os.lseek(args_fd, 0, os.SEEK_SET)
        started = time.monotonic()
        supervisor = _spawn([tools.bwrap, "--args", str(args_fd), *args[split:]], limits,
                            SandboxUnavailable, env={}, pass_fds=(args_fd, info_w, ready_w),
                            info_fd=info_r, ready_fd=ready_r)
    except BaseException:
        for fd in (info_r, ready_r):
            os.close(fd)
        raise
    finally:
        for fd in (info_w, ready_w, args_fd):
            os.close(fd)
    returncode, usage = supervisor.run()
    result = _result(argv, supervisor, returncode, usage, limits, started, unsandboxed=False)
    if not supervisor.ready and supervisor.killed is None:
        raise SandboxSetupError(
            f"bubblewrap could not start the sandbox (exit {returncode}): "
            f"{bytes(supervisor.err.data[:2000]).decode(errors='replace').strip()}"
            f"{_setup_hint(supervisor.err.data)}")
    return result


def _spawn(command: list[str], limits: ResourceLimits, error: type[SandboxError], *,
           env: dict[str, str], pass_fds: tuple[int, ...] = (), cwd: str | None = None,
           info_fd: int | None = None, ready_fd: int | None = None) -> _Supervisor:
    """Start ``command`` as the leader of a new session, under a supervisor."""
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=cwd, pass_fds=pass_fds,
                                start_new_session=True)
    except OSError as exc:
        raise error(f"cannot start {command[0]}: {exc}") from exc
    try:
        return _Supervisor(proc, limits, info_fd=info_fd, ready_fd=ready_fd)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _setup_hint(stderr: bytes | bytearray) -> str:
    text = bytes(stderr).decode(errors="replace")
    if "namespace" in text or "uid map" in text:
        return (" -- user namespaces may be disabled: check sysctl user.max_user_namespaces "
                "(and kernel.unprivileged_userns_clone on older Debian kernels), or run the node "
                "as root")
    return ""


def _result(argv: tuple[str, ...], sup: _Supervisor, returncode: int, usage: os.struct_rusage,
            limits: ResourceLimits, started: float, *, unsandboxed: bool) -> SandboxResult:
    if returncode < 0:
        returncode = 128 - returncode
    sig = returncode - 128 if 128 < returncode < 128 + signal.NSIG else None
    cpu_s = usage.ru_utime + usage.ru_stime
    limit_hit: str | None = None
    if sup.killed in ("timeout", "output"):
        limit_hit = sup.killed
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and sup.killed is None
                                   and cpu_s >= 0.8 * limits.cpu_s):
        # A SIGKILL we did not send, after about cpu_s of CPU: RLIMIT_CPU's hard limit (rusage
        # samples CPU time a little lower than the kernel counts it for the limit).
        limit_hit = "cpu"
    elif sig == signal.SIGXFSZ:
        limit_hit = "file_size"
    return SandboxResult(
        argv=argv, returncode=returncode, signal=sig,
        stdout=bytes(sup.out.data), stderr=bytes(sup.err.data),
        stdout_truncated=sup.out.truncated, stderr_truncated=sup.err.truncated,
        stdout_total=sup.out.total, stderr_total=sup.err.total,
        timed_out=sup.killed == "timeout", limit_hit=limit_hit,
        wall_s=time.monotonic() - started, cpu_s=cpu_s, unsandboxed=unsandboxed)


def _describe(result: SandboxResult) -> str:
    return (f"exit {result.returncode}, limit {result.limit_hit}, stderr "
            f"{result.stderr[:500].decode(errors='replace').strip()!r}")


# --- unsafe mode ---------------------------------------------------------------------------


def _run_unsafe(argv: tuple[str, ...], limits: ResourceLimits, mounts: list[_Mount],
                cwd: str, env: dict[str, str]) -> SandboxResult:
    """No namespaces: inside paths are rewritten to host paths; rlimits, timeout and output
    caps still apply."""
    log.warning(
        "UNSAFE: running %r WITHOUT A SANDBOX (unsafe_no_sandbox=True): it can read and write "
        "everything this node can, reach the network, and escape the timeout by leaving its "
        "session. Use only for trusted local experiments, never on a verifier.", list(argv))
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if not prlimit:
        raise SandboxUnavailable("prlimit not found: install util-linux "
                                 "(Debian/Ubuntu: apt-get install util-linux)")
    with tempfile.TemporaryDirectory(prefix="poi-unsafe-tmp-") as tmp:
        table = sorted([(m.inside, str(m.host)) for m in mounts] + [("/tmp", tmp)],
                       key=lambda pair: -len(pair[0]))

        def host_path(value: str) -> str:
            parts = []
            for part in value.split(":"):
                for inside, host in table:
                    if part == inside or part.startswith(inside + "/"):
                        part = host + part[len(inside):]
                        break
                parts.append(part)
            return ":".join(parts)

        command = [prlimit, *_prlimit_args(limits), "--", *(host_path(a) for a in argv)]
        started = time.monotonic()
        supervisor = _spawn(command, limits, SandboxConfigError, cwd=host_path(cwd),
                            env={key: host_path(value) for key, value in env.items()})
        returncode, usage = supervisor.run()
        return _result(argv, supervisor, returncode, usage, limits, started, unsandboxed=True)
