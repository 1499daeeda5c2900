"""Real node processes: start them, wait until each answers, stop every one of them.

Each node is ``poi node run DIR`` (run as ``python -m node.run_cli node run DIR``), its output
appended to ``<devnet>/logs/<name>.log``. The launcher keeps the PID of every process it
started and stops exactly those (SIGTERM, then SIGKILL after a grace period) on exit, Ctrl-C or
failure; on Linux each child also asks the kernel to SIGTERM it should the devnet process
itself die, so no node outlives the devnet even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..http_client import get_json
from .errors import DevnetError
from .layout import Layout

READY_TIMEOUT_S = 120.0
"""How long a node may take to answer ``GET /v1/status`` (six Python processes importing
libp2p on two cores take a while)."""
STOP_GRACE_S = 15.0
"""SIGTERM first; whatever still runs after this many seconds gets SIGKILL."""
LOG_TAIL_CHARS = 2000
_PR_SET_PDEATHSIG = 1
NODE_NICE = -10
"""The nodes' scheduling priority where the devnet may raise it (root): their benchmark runs
inherit it, so other programs on a busy machine time-slice them less. On a shared two-core
machine that is the difference between a 6% improvement measured as −6% [−8%, −2%] and as
−3% [−9%, +2%] (not improved). Without the privilege the nodes run at normal priority."""


def _child_setup(cpu: int | None, nice: int) -> Callable[[], None]:
    """Run in each node process before exec: die with the devnet, pin, raise priority."""
    def setup() -> None:  # pragma: no cover - runs in the child before exec
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})
        if nice:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, nice)
    return setup


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - chars))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class NodeProcess:
    name: str
    url: str
    log: Path
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Launcher:
    """Starts the nodes of a layout and owns their processes until ``stop``."""

    layout: Layout
    python: str = sys.executable
    nice: int = 0
    """Scheduling priority for the nodes (``NODE_NICE`` in a devnet; 0: unchanged)."""
    processes: list[NodeProcess] = field(default_factory=list)

    def command(self, name: str) -> list[str]:
        # `poi node run DIR`, through the module so that no entry point needs installing.
        return [self.python, "-m", "node.run_cli", "node", "run",
                str(self.layout.node_dir(name))]

    def start(self, names: Iterable[str] | None = None) -> None:
        """Start the named nodes (default: all), in plan order."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        repo = Path(__file__).resolve().parents[2]
        wanted = set(names) if names is not None else None
        for node in self.layout.plan.nodes:
            if wanted is not None and node.name not in wanted:
                continue
            log = self.layout.log_path(node.name)
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    self.command(node.name), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=repo, env=env, start_new_session=True,
                    preexec_fn=_child_setup(self.layout.cpus.get(node.name), self.nice)
                    if sys.platform == "linux" else None)
            self.processes.append(NodeProcess(node.name, node.http_url, log, process))

    def check_alive(self) -> None:
        """Raise DevnetError naming the first node that exited, with the tail of its log."""
        for node in self.processes:
            code = node.process.poll()
            if code is not None:
                raise DevnetError(f"node {node.name} exited with status {code}; the end of its "
                                  f"log ({node.log}):\n{log_tail(node.log)}")

    @property
    def started(self) -> set[str]:
        return {p.name for p in self.processes}

    def wait_ready(self, timeout: float = READY_TIMEOUT_S,
                   on_wait: Callable[[list[str]], None] | None = None) -> None:
        """Wait until every started node answers ``GET /v1/status``; fail on the first one
        that dies or, at the deadline, name those still silent."""
        deadline = time.monotonic() + timeout
        waiting = {n.name: n for n in self.processes}
        while waiting:
            self.check_alive()
            for name, node in list(waiting.items()):
                with contextlib.suppress(OSError):
                    get_json(f"{node.url}/v1/status", timeout=2.0)
                    del waiting[name]
            if not waiting:
                return
            if on_wait:
                on_wait(sorted(waiting))
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n} ({w.log}):\n{log_tail(w.log, 600)}"
                                  for n, w in sorted(waiting.items()))
                raise DevnetError(f"after {timeout:.0f} s these nodes still do not answer on "
                                  f"their HTTP port: {', '.join(sorted(waiting))}\n{tails}")
            time.sleep(0.5)

    def stop(self, grace: float = STOP_GRACE_S) -> list[str]:
        """Stop every node this launcher started; returns the names that needed SIGKILL."""
        for node in reversed(self.processes):
            if node.alive():
                with contextlib.suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        killed = []
        for node in self.processes:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                node.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    node.process.kill()
                node.process.wait()
                killed.append(node.name)
        return killed
