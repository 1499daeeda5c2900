"""Start runner processes on 127.0.0.1, talk to them, and always stop them.

``Cluster`` is a context manager: every process it started is terminated (then SIGKILLed by PID)
when the block exits, whatever happened inside. Each node's stdout JSON lines are collected by a
reader thread; tests wait for events with deadlines (``Node.wait``), never fixed sleeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
Event = dict[str, Any]


def seed_for(name: str) -> str:
    """A fixed 32-byte seed per node name: a restarted node keeps its peer ID."""
    return hashlib.sha256(b"poi-p2p-test:" + name.encode()).hexdigest()


class NodeDied(AssertionError):
    pass


class Node:
    def __init__(self, name: str, args: list[str], log_dir: Path, nice: int = 0) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        cmd = [sys.executable, "-m", "tests.p2p_support.runner", *args]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.peer_id = ""
        self.addrs: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def ready(self, timeout: float = 30) -> Node:
        event = self.wait(lambda e: e["ev"] == "ready", timeout, what="ready")
        self.peer_id, self.addrs, self.pid = event["peer_id"], event["addrs"], event["pid"]
        return self

    @property
    def addr(self) -> str:
        return self.addrs[0]

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, predicate: Callable[[Event], bool], timeout: float, *, what: str = "",
             start: int = 0) -> Event:
        """The first event (from index ``start``) matching ``predicate``, within ``timeout``."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise NodeDied(f"{self.name} exited ({self.proc.returncode}) waiting for "
                                   f"{what}; log tail:\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no {what or 'matching event'} in "
                                       f"{timeout}s; log tail:\n{self.log_tail()}")
                self._cond.wait(min(left, 0.5))

    def ask(self, reply: str, wait_s: float = 30, /, **cmd: Any) -> Event:
        """Send a command and wait (``wait_s``) for the reply event ``reply`` with our tag."""
        tag = f"{cmd.get('cmd')}-{time.monotonic_ns()}"
        key = "id" if reply in ("reply", "bench") else "tag"
        cmd.setdefault(key, tag)
        start = len(self.events)
        self.send(**cmd)
        return self.wait(lambda e: e["ev"] == reply and e.get(key) == cmd[key], wait_s,
                         what=reply, start=start)

    def count(self, predicate: Callable[[Event], bool]) -> int:
        with self._cond:
            return sum(1 for e in self.events if predicate(e))

    def matching(self, predicate: Callable[[Event], bool]) -> list[Event]:
        with self._cond:
            return [e for e in self.events if predicate(e)]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Ask to exit, then terminate, then SIGKILL: the process is gone when this returns."""
        try:
            if self.proc.poll() is None:
                try:
                    self.send(cmd="exit")
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
            self._log.close()


class Cluster:
    """Owns node processes; ``with Cluster(tmp_path) as c:`` stops them all on exit."""

    def __init__(self, log_dir: Path, nice: int = 0) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nice = nice
        self.nodes: list[Node] = []

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        errors = []
        for node in self.nodes:
            try:
                node.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def start(self, name: str, *, bootstrap: tuple[str, ...] = (), topics: tuple[str, ...] = (),
              extra: tuple[str, ...] = (), listen: str = "/ip4/127.0.0.1/tcp/0",
              wait: bool = True) -> Node:
        args = ["--seed", seed_for(name), "--listen", listen]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        for topic in topics:
            args += ["--topic", topic]
        node = Node(name, [*args, *extra], self.log_dir, self.nice)
        self.nodes.append(node)
        return node.ready() if wait else node

    def restart(self, node: Node, *, listen: str) -> Node:
        """Start a process with ``node``'s identity and arguments, listening on ``listen``."""
        args = list(node.args)
        args[args.index("--listen") + 1] = listen
        fresh = Node(node.name, args, self.log_dir, self.nice)
        self.nodes.append(fresh)
        return fresh.ready()

    def star(self, count: int, *, topics: tuple[str, ...] = (), extra: tuple[str, ...] = ()
             ) -> list[Node]:
        """Node 0, then ``count - 1`` nodes bootstrapping from it (peer exchange does the rest)."""
        first = self.start("n0", topics=topics, extra=extra)
        others = [self.start(f"n{i}", bootstrap=(first.addr,), topics=topics, extra=extra,
                             wait=False) for i in range(1, count)]
        return [first, *(node.ready() for node in others)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def peers_of(node: Node, wait_s: float = 10) -> list[str]:
    return node.ask("peers", wait_s, cmd="peers")["peers"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
