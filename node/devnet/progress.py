"""The live view: what the network is doing, polled from every node's HTTP API.

``poll`` (I/O) reads each node's ``/v1/status`` and ``/v1/targets/{t}/heads``, and from one
honest verifier the DAG and the stakes; everything after that is pure:
``counts`` and ``diff_events`` turn two snapshots into numbers and news lines, ``render`` turns a
snapshot into a rich renderable. The tests feed recorded JSON in the API's shapes to the pure
part.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text

from protocol.constants import PPM

from ..http_client import get_json

STATUS_STYLE = {"final": "bold green", "accepted": "green", "rejected": "red",
                "pending": "yellow"}
EVENT_LINES = 8


@dataclass
class NodeState:
    name: str
    roles: tuple[str, ...]
    url: str
    down: str = ""
    """Why the node is not polled ("not started yet", "exited"); empty while it runs."""
    status: dict | None = None
    heads: dict | None = None
    error: str = ""


@dataclass
class Snapshot:
    """One look at the whole devnet (plain JSON from the API, plus who is who)."""

    elapsed_s: float
    target: str
    nodes: list[NodeState]
    names: dict[str, str]
    """Public key (hex) -> node name (and the adversary's key -> "adversary")."""
    source: str = ""
    """The node whose view the DAG and the stakes come from."""
    dag: list[dict] = field(default_factory=list)
    stakes: dict | None = None
    """Hostile commit CID -> {patch, expect, threat} (what the adversary submitted)."""

    def commits(self) -> list[dict]:
        """DAG nodes without the target (the genesis), oldest first."""
        rows = [n for n in self.dag if n.get("cid") != self.target]
        return sorted(rows, key=lambda n: (n.get("time_ms") or 0, n.get("cid", "")))

    def name_of(self, key: str | None) -> str:
        if not key:
            return "?"
        return self.names.get(key, key[:10])


@dataclass(frozen=True)
class Counts:
    proposed: int
    pending: int
    accepted: int
    final: int
    rejected: int
    verifying: int
    queued: int
    slashings: int


def counts(snap: Snapshot) -> Counts:
    commits = snap.commits()
    by_status = Counter(commit.get("status", "pending") for commit in commits)
    statuses = [n.status for n in snap.nodes if n.status]
    return Counts(
        proposed=len(commits),
        pending=by_status.get("pending", 0),
        accepted=by_status.get("accepted", 0),
        final=by_status.get("final", 0),
        rejected=by_status.get("rejected", 0),
        verifying=sum(1 for s in statuses if s.get("verifying")),
        queued=sum(int(s.get("queue_length") or 0) for s in statuses),
        slashings=len((snap.stakes or {}).get("slashes") or []),
    )


def short(cid: str | None, n: int = 10) -> str:
    return "—" if not cid else f"…{cid[-n:]}"


def ratio_text(ratio_ppm: int | None) -> str:
    """A ratio candidate/parent as a speed change: 955,000 ppm -> "−4.5%"."""
    if not ratio_ppm:
        return ""
    change = (ratio_ppm - PPM) / PPM * 100
    return f"{change:+.1f}%".replace("-", "−")


def diff_events(before: Snapshot | None, after: Snapshot) -> list[str]:
    """News lines for what changed between two snapshots (pure)."""
    lines: list[str] = []
    old = {c["cid"]: c for c in before.commits()} if before else {}
    for commit in after.commits():
        cid, status = commit["cid"], commit.get("status", "pending")
        who = after.name_of(commit.get("author"))
        label = f"{short(cid)} “{(commit.get('message') or '').splitlines()[0][:50]}”" \
            if commit.get("message") else short(cid)
        previous = old.get(cid)
        if previous is None:
            lines.append(f"{who} proposed {label}")
            if status != "pending":
                lines.append(f"{label} {status}")
        elif previous.get("status") != status:
            lines.append(f"{label} {status}")
    old_slashes = len((before.stakes or {}).get("slashes") or []) if before else 0
    for slash in ((after.stakes or {}).get("slashes") or [])[old_slashes:]:
        lines.append(f"SLASHED {after.name_of(slash.get('offender'))}: {slash.get('amount')} "
                     f"for {slash.get('reason')}")
    return lines


def node_table(snap: Snapshot) -> Table:
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("node", "roles", "peers", "head", "final", "verifying", "queue"):
        table.add_column(column, no_wrap=True)
    for node in snap.nodes:
        status = node.status or {}
        heads = node.heads or {}
        if node.down:
            table.add_row(node.name, ",".join(node.roles),
                          Text(node.down, "bold red" if node.down == "exited" else "dim"),
                          "", "", "", "")
            continue
        if node.status is None:
            table.add_row(node.name, ",".join(node.roles),
                          Text(node.error or "no answer", "yellow"), "", "", "", "")
            continue
        verifying = status.get("verifying")
        table.add_row(node.name, ",".join(node.roles), str(len(status.get("peers") or [])),
                      short(heads.get("head")), short(heads.get("finalized")),
                      Text(short(verifying), "cyan") if verifying else "",
                      str(status.get("queue_length") or 0))
    return table


def commit_table(snap: Snapshot, limit: int = 14) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("commit", "by", "status", "Δ time", "message"):
        table.add_column(column, no_wrap=column != "message", overflow="ellipsis")
    commits = snap.commits()
    for commit in commits[-limit:]:
        status = commit.get("status", "pending")
        verified = status in ("accepted", "final")  # else a ratio is one verifier's claim
        table.add_row(short(commit["cid"]), snap.name_of(commit.get("author")),
                      Text(status, STATUS_STYLE.get(status, "")),
                      ratio_text(commit.get("ratio_ppm")) if verified else "",
                      (commit.get("message") or "").splitlines()[0][:60]
                      if commit.get("message") else "")
    if len(commits) > limit:
        table.caption = f"(the latest {limit} of {len(commits)})"
    return table


def headline(snap: Snapshot) -> Text:
    c = counts(snap)
    text = Text()
    text.append(f"{snap.elapsed_s:5.0f}s  ", "dim")
    text.append(f"proposed {c.proposed}  ")
    text.append(f"verifying {c.verifying}", "cyan")
    text.append(f" (queued {c.queued})  ")
    text.append(f"pending {c.pending}  ", "yellow")
    text.append(f"accepted {c.accepted}  ", "green")
    text.append(f"final {c.final}  ", "bold green")
    text.append(f"rejected {c.rejected}  ", "red")
    text.append(f"slashings {c.slashings}", "bold magenta" if c.slashings else "")
    return text


def render(snap: Snapshot, events: Iterable[str] = ()) -> Group:
    """The live view of one snapshot (pure)."""
    parts: list = [headline(snap), node_table(snap), commit_table(snap)]
    events = list(events)[-EVENT_LINES:]
    if events:
        parts.append(Text("\n".join(events), "dim"))
    return Group(*parts)


# --- polling (I/O) ---------------------------------------------------------------------------


def fetch_dag(url: str, target: str, *, timeout: float = 5.0) -> list[dict]:
    nodes: list[dict] = []
    since: int | None = 0
    while since is not None:
        page = get_json(f"{url}/v1/targets/{target}/dag?since={since}&limit=500",
                         timeout=timeout)
        nodes.extend(page.get("nodes") or [])
        following = page.get("next")
        since = following if isinstance(following, int) and following > since else None
    return nodes


def poll(nodes: Iterable[NodeState], *, target: str, names: Mapping[str, str],
         t0: float, source_order: Iterable[str] = (), down: Mapping[str, str] = ()) -> Snapshot:
    """Read every node once (but those ``down`` names, with why). A node that does not
    answer keeps ``status=None`` and an error."""
    states = []
    down = dict(down)
    for node in nodes:
        state = NodeState(node.name, node.roles, node.url, down=down.get(node.name, ""))
        if not state.down:
            try:
                state.status = get_json(f"{node.url}/v1/status", timeout=3.0)
                state.heads = get_json(f"{node.url}/v1/targets/{target}/heads", timeout=3.0)
            except OSError as exc:
                state.error = _short_error(exc)
        states.append(state)
    snap = Snapshot(elapsed_s=time.monotonic() - t0, target=target, nodes=states,
                    names=dict(names))
    answering = {s.name: s for s in states if s.status is not None}
    for name in [*source_order, *answering]:
        source = answering.get(name)
        if source is None:
            continue
        with contextlib.suppress(OSError):
            snap.dag = fetch_dag(source.url, target)
            snap.stakes = get_json(f"{source.url}/v1/targets/{target}/stakes")
            snap.source = name
            break
    return snap


def _short_error(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason)[:40]
