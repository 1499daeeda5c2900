"""``poi devnet``: a whole network of real node processes on 127.0.0.1, end to end.

    plan (ports, who runs what) → print the dashboard URL → keys and genesis → data dirs →
    fill the shared build cache → start the verifiers → the adversary submits the hostile
    commits → once they are dealt with, start the proposers → watch (live view) until done,
    stalled or the deadline → summary (and summary.json with every node's own answers) →
    stay up until Ctrl-C, or stop (--exit-when-done)

Every node process is stopped by PID on the way out, whatever the way out is.

Time budget of a default run on a 2-core machine: one run of the quick bench takes ≈ 0.25 s with
its sandbox, so a pair ≈ 0.5 s and an evaluation at the target's 31 pairs ≈ 15.5 s of benchmark,
and the host-wide bench lock serialises every benchmark. Proposer-1 evaluates its 4 patches and
proposer-2 its one at the same pairs, and the three honest verifiers each evaluate the 3–5
published good commits: ≈ 3–5 min of benchmarks in a row. The hostile commits cost gates only
(≈ 1 s each, builds are cached): ≈ 20–50 s before the proposers start. Gates, finality and the
slash overlap the benchmarks. Filling the build cache takes ≈ 30 s the first time (13 release
builds), nothing on a rerun in the same directory. Measured from a fresh clone: 268 s for
``make demo`` in all, set-up included (README); ``--pairs 9`` for the verifiers saves ≈ 1 min
at the price of wider intervals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live

from dag.manifest import Genesis, load_manifest
from node.bundle import encode_bundle
from proposer.log import ExperimentLog
from proposer.loop import LOG_NAME
from protocol.keys import SigningKey
from verifier.candidates import PatchFile, Workspace
from verifier.hardware import HardwareError
from verifier.pipeline import EvaluationError
from verifier.sandbox import SandboxError, check_sandbox

from ..genesis_file import encode_genesis_file
from ..http_client import get_json, post_bundle
from ..runtime import PROPOSER_WORK_DIR
from .errors import DevnetError
from .genesis import (
    DEVNET_EPOCH_SECONDS,
    EXAMPLE,
    GENESIS_STAKE,
    build_genesis,
    generate_keys,
    host_profile,
    manifest_path,
    validator_stakes,
)
from .hostile import hostile_commit
from .launch import NODE_NICE, Launcher
from .layout import (
    ADVERSARY,
    BUILD_CACHE,
    BYZANTINE,
    HONEST_VERIFIERS,
    LOG_DIR,
    Layout,
    assign_cpus,
    free_ports,
    plan_devnet,
    prepare_dir,
    read_patches,
    select_hostile,
    write_layout,
)
from .prebuild import apply_patches, build_items, prebuild
from .progress import NodeState, Snapshot, diff_events, poll, render
from .summary import (
    Done,
    Outcome,
    build_summary,
    check_done,
    hostile_dealt_with,
    ledger_fingerprint,
    render_summary,
    unresolved,
)

POLL_S = 2.0
DONE_CHECK_S = 6.0
HOSTILE_PHASE_MAX_S = 90.0
"""PHASES: the adversary's commits come first, the proposers' after them.

The verifier nodes start, the adversary submits its hostile commits, and the proposer nodes
start once every one of those is resolved (or after this many seconds). Two reasons. On two
cores, the verifiers' gates on hostile code (memory and thread bombs among them) running beside
a proposer's paired benchmark make its interval wide enough to discard a real improvement, and
a proposer that discards one good patch skips every patch that depends on it. And the Byzantine
verifier's false claims on hostile commits must come before the good commits are final: the
challenge that slashes it is anchored on a final commit of a later epoch. The proposers join
late, so the demo also shows late joiners catching up from their peers."""
STAGGER_MAX_S = 45.0
"""The other proposers start once the first (the one with the most patches) has its first
result, or after this many seconds. On a two-core machine whose cores share one physical core
(or a busy neighbour), whatever runs on the other core dilutes a benchmark: the example's first
good patch (−6% at the quick size) measured −7.5% with the other core idle, −4.4% with gates
running there, and −2.6% [−5.7%, +1.1%] (not improved: discarded) in a devnet run where both
proposers started together. That first patch is the root of the whole chain 02 → 05, so it gets
the quietest machine the devnet can give it."""
STALL_S = 90.0
"""Stop watching when nothing has changed this long, the proposers are idle and no commit
waits for verdicts: nothing more can happen."""
REPORT_NAME = "summary.json"
HOSTILE_NAME = "hostile.json"
REFERENCE = HONEST_VERIFIERS[0]
"""The node whose view the live counters and the summary show (all nodes must agree anyway)."""


@dataclass
class DevnetOptions:
    """What ``poi devnet`` was asked for (its options, with their defaults, are in
    node/devnet_cli.py)."""

    dir: Path
    full: bool
    byzantine: str
    exit_when_done: bool
    timeout_s: float
    hostile: str
    pairs: int
    """Paired benchmark runs per verification: 0 is the target's own ``stats.pairs``. Fewer
    save ≈ 0.5 s per pair per verification; on a busy two-core machine 15 pairs already left a
    real 6% improvement not_improved on all three verifiers once. The proposers always measure
    with the target's ``stats.pairs`` (genesis.build_genesis)."""


def run_devnet(options: DevnetOptions, console: Console | None = None) -> int:
    """Run a devnet; returns the exit status (0: everything the demo promises happened)."""
    console = console or Console()
    launcher: Launcher | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C even where a shell started us with SIGINT ignored (a background job).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        devnet = _set_up(options, console)
        launcher = Launcher(devnet.layout, nice=NODE_NICE if os.geteuid() == 0 else 0)
        return _run(options, console, devnet, launcher)
    except DevnetError as exc:
        console.print(f"[bold red]devnet: {exc}[/]")
        return 2
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/]")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if launcher is not None and launcher.processes:
            console.print(f"stopping {len(launcher.processes)} nodes …")
            killed = launcher.stop()
            if killed:
                console.print(f"[yellow]{', '.join(killed)} needed SIGKILL[/]")
            console.print(f"stopped; logs and data stay in {launcher.layout.root}/")


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _check_prerequisites() -> None:
    try:
        check_sandbox()
    except SandboxError as exc:
        raise DevnetError(f"verifiers run proposer code only inside bubblewrap's sandbox, which "
                          f"does not work here: {exc} (`make demo` installs bubblewrap when run "
                          "as root)") from None


@dataclass
class Devnet:
    layout: Layout
    genesis: Genesis
    adversary: SigningKey
    hostile: dict[str, PatchFile]
    """The chosen hostile patches by name ..."""
    workspaces: dict[str, Workspace]
    """... and every workspace the devnet built, by patch name (prebuild.apply_patches)."""

    @property
    def description(self) -> str:
        """The target in words, for the summary's speed-up line."""
        return self.genesis.target.description.split(":")[0]


def _set_up(options: DevnetOptions, console: Console) -> Devnet:
    profile = host_profile()
    manifest = manifest_path(profile, full=options.full)
    good = read_patches(EXAMPLE / "patches" / "good")
    every_hostile = {p.name: p for p in read_patches(EXAMPLE / "patches" / "hostile")}
    hostile = select_hostile(options.hostile, profile, list(every_hostile))
    plan = plan_devnet(good, hostile, profile=profile, manifest=str(manifest),
                       pairs=options.pairs, byzantine=options.byzantine, stake=GENESIS_STAKE,
                       ports=free_ports())
    reference = plan.node(REFERENCE)
    console.print(f"[bold]Dashboard: {reference.http_url}/[/]  (every node serves one; "
                  "the list is below)")
    _check_prerequisites()
    root = options.dir.resolve()
    prepare_dir(root)
    keys = generate_keys([n.name for n in plan.nodes] + [ADVERSARY])
    stakes = validator_stakes(keys, [n.name for n in plan.validators])
    genesis = build_genesis(load_manifest(manifest), stakes,
                            genesis_time_ms=int(time.time() * 1000))
    cpus = {} if options.full else assign_cpus(plan, sorted(os.sched_getaffinity(0)))
    layout = write_layout(root, plan, keys, encode_genesis_file(genesis), str(genesis.target.cid),
                          cpus=cpus)
    description = genesis.target.description.split(":")[0]
    console.print(f"target [green]{genesis.target.name}[/] {genesis.target.cid}\n"
                  f"  {description}\n  benchmark pairs per evaluation: "
                  f"{genesis.target.stats.proposer_pairs} for proposers, "
                  f"{options.pairs or genesis.target.stats.pairs} for verifiers; epochs of "
                  f"{DEVNET_EPOCH_SECONDS} s")
    console.print(f"devnet directory {root}/ (logs in {root}/logs/); keys are UNENCRYPTED "
                  "development keys: never bond real stake to them")
    for node in plan.nodes:
        what = ", ".join(node.roles)
        if node.byzantine:
            what += f" [bold magenta](Byzantine: {node.byzantine})[/]"
        if node.stake:
            what += f", stake {node.stake}"
        if node.patches:
            what += f", patches {', '.join(p.split('-')[0] for p in node.patches)}"
        if node.name in cpus:
            what += f", CPU {cpus[node.name]}"
        console.print(f"  {node.name:<11} {node.http_url}  {what}")
    if hostile:
        console.print(f"  {ADVERSARY:<11} (no node) submits hostile patches "
                      f"{', '.join(h.split('-')[0] for h in hostile)} over HTTP")
    chosen = {name: every_hostile[name] for name in hostile}
    gate_failing = [name for name, patch in chosen.items() if patch.expect == "gate_failed"]
    if options.byzantine == "lie" and not gate_failing:
        console.print("[yellow]note: the lying verifier is slashed through a challenge of its "
                      "claim that a gate-failing commit passed the gate; none of the chosen "
                      "hostile patches fails the gate, so expect no slash[/]")
    applied = _prebuild(layout, genesis, good, list(chosen.values()), console)
    return Devnet(layout, genesis, keys[ADVERSARY], chosen, applied)


def _prebuild(layout: Layout, genesis: Genesis, good: list[PatchFile],
              hostile: list[PatchFile], console: Console) -> dict[str, Workspace]:
    """Fill the shared build cache first (node/devnet/prebuild.py says why); returns every
    workspace by patch name."""
    started = time.monotonic()
    work = layout.root / "prebuild"
    with tempfile.TemporaryDirectory(prefix="scratch-", dir=layout.root) as scratch:
        applied = apply_patches(genesis, good, hostile, Path(scratch))
    items = build_items(genesis, applied)
    with console.status("building the workspaces …") as status:
        def report(done: int, total: int, label: str, seconds: float, cached: bool) -> None:
            status.update(f"building the workspaces into the shared cache: {done}/{total} "
                          f"({label}{', cached' if cached else f', {seconds:.0f} s'})")
        try:
            built = prebuild(genesis, items, work, layout.root / BUILD_CACHE, on_build=report)
        except (EvaluationError, SandboxError, HardwareError, OSError) as exc:
            raise DevnetError(f"cannot build the example target here: {exc}") from None
    console.print(f"{len(items)} workspaces in the shared build cache ({built} built now, "
                  f"{len(items) - built} reused) in {time.monotonic() - started:.0f} s")
    return applied


def _names(layout: Layout) -> dict[str, str]:
    return {key: name for name, key in layout.public_keys.items()}


def _node_states(layout: Layout) -> list[NodeState]:
    return [NodeState(n.name, n.roles, n.http_url) for n in layout.plan.nodes]


def _submit_hostile(devnet: Devnet, console: Console) -> dict[str, dict]:
    """The adversary signs each hostile patch as a commit and posts it to a node."""
    layout = devnet.layout
    if not layout.plan.hostile:
        return {}
    via = layout.plan.node(REFERENCE)
    submitted: dict[str, dict] = {}
    for name, patch in devnet.hostile.items():
        commit = hostile_commit(devnet.genesis, patch, devnet.workspaces[name], devnet.adversary,
                                time_ms=int(time.time() * 1000))
        try:
            answer = post_bundle(f"{via.http_url}/v1/commits", encode_bundle(commit.objects),
                                 timeout=30.0)
        except OSError as exc:
            raise DevnetError(f"{via.name} refused the adversary's commit for {name}: "
                              f"{exc}") from None
        if commit.cid not in (answer.get("accepted") or []):
            console.print(f"[yellow]{via.name} did not take {name}: {answer}[/]")
            continue
        submitted[commit.cid] = {"patch": name, "expect": commit.expect,
                                 "threat": commit.threat, "title": commit.title}
    (layout.root / HOSTILE_NAME).write_text(json.dumps(submitted, indent=2) + "\n")
    console.print(f"{ADVERSARY} submitted {len(submitted)} hostile commits through "
                  f"{via.name}'s HTTP API")
    return submitted


def proposer_idle(status: dict | None, log_rows: list[dict], patches: Sequence[str]) -> bool:
    """Whether a proposer has worked through its patches (pure): its role's state when the
    node reports one (``status["proposer"]["state"] == "idle"``), else its experiment log
    holds a row for every patch it was given."""
    proposer = (status or {}).get("proposer")
    if isinstance(proposer, dict) and "state" in proposer:
        return proposer["state"] == "idle"
    tried = {row.get("patch") for row in log_rows}
    return all(name in tried for name in patches)


def gather_outcome(layout: Layout, snap: Snapshot, hostile: dict[str, dict],
                   description: str = "", *, complete: bool = False) -> Outcome:
    """The summary's inputs: the snapshot plus the chain and verdicts from the reference.

    While watching, only what the done-check reads: the verdicts on pending commits, and every
    node's ledger once all nodes run. ``complete`` (for the summary) adds the verdicts on every
    commit not on the chain, and every node's ledger whatever runs."""
    source = next((n for n in snap.nodes if n.name == snap.source), None)
    chain: dict = {"steps": [], "speedup": 1.0}
    attestations: dict[str, list[dict]] = {}
    if source is not None:
        try:
            chain = get_json(f"{source.url}/v1/targets/{layout.target}/chain")
            on_chain = {s.get("cid") for s in chain.get("steps", [])}
            for node in snap.commits():
                if node["cid"] not in on_chain and (complete or node.get("status") == "pending"):
                    attestations[node["cid"]] = get_json(
                        f"{source.url}/v1/commits/{node['cid']}/attestations")
        except OSError:
            pass
    plan = layout.plan
    experiments = {n.name: [row.to_json() for row in ExperimentLog(
        layout.node_dir(n.name) / PROPOSER_WORK_DIR / LOG_NAME).rows()] for n in plan.proposers}
    ledgers: dict[str, str | None] = {}
    if complete or not any(node.down for node in snap.nodes):
        for node in snap.nodes:
            ledgers[node.name] = None
            if node.down:
                continue
            stakes = snap.stakes if node.name == snap.source else None
            with contextlib.suppress(OSError):
                stakes = stakes or get_json(f"{node.url}/v1/targets/{layout.target}/stakes")
                ledgers[node.name] = ledger_fingerprint(stakes)
    return Outcome(
        target=layout.target, chain=chain, dag=snap.dag, stakes=snap.stakes or {},
        heads={n.name: n.heads for n in snap.nodes}, attestations=attestations,
        names=_names(layout),
        honest=tuple(layout.public_keys[n] for n in HONEST_VERIFIERS),
        byzantine=layout.public_keys[BYZANTINE], hostile=hostile,
        hostile_expected=len(plan.hostile),
        proposers_idle={n.name: proposer_idle(
            next((s.status for s in snap.nodes if s.name == n.name), None),
            experiments[n.name], n.patches) for n in plan.proposers},
        experiments=experiments,
        description=description, ledgers=ledgers)


def node_report(url: str, target: str) -> dict:
    """What one node's HTTP API says about the outcome (errors recorded, not raised)."""
    report: dict = {"url": url}
    for key, path in (("status", "/v1/status"), ("heads", f"/v1/targets/{target}/heads"),
                      ("chain", f"/v1/targets/{target}/chain"),
                      ("stakes", f"/v1/targets/{target}/stakes"),
                      ("rejected", f"/v1/targets/{target}/rejected")):
        try:
            report[key] = get_json(url + path)
        except OSError as exc:
            report[key] = None
            report.setdefault("errors", {})[key] = str(exc)
    return report


def write_report(layout: Layout, done: Done, elapsed_s: float, pids: dict[str, int],
                 hostile: dict[str, dict]) -> Path:
    """``summary.json``: the outcome and every node's own answers, read from its HTTP API (once
    more, at the end: each node's own, not the reference node's that the summary shows)."""
    path = layout.root / REPORT_NAME
    path.write_text(json.dumps({
        "done": done.ok, "missing": list(done.missing), "elapsed_s": round(elapsed_s, 1),
        "target": layout.target, "pids": pids, "hostile": hostile,
        "nodes": {n.name: node_report(n.http_url, layout.target) for n in layout.plan.nodes},
    }, indent=1) + "\n")
    return path


def _run(options: DevnetOptions, console: Console, devnet: Devnet, launcher: Launcher) -> int:
    layout, plan = devnet.layout, devnet.layout.plan
    t0 = time.monotonic()
    # The proposer with the most patches first (see STAGGER_MAX_S), then the others.
    proposers = [n.name for n in sorted(plan.proposers, key=lambda n: -len(n.patches))]
    # Hostile commits first, proposers once the network has dealt with them (at once when
    # there are none), one after the other: see PHASES and STAGGER_MAX_S.
    launcher.start([n.name for n in plan.nodes if n.name not in proposers])
    with console.status("starting nodes …") as status:
        launcher.wait_ready(on_wait=lambda names: status.update(
            f"starting nodes: waiting for {', '.join(names)}"))
    console.print(f"{', '.join(sorted(launcher.started))} answer "
                  f"({time.monotonic() - t0:.0f} s)")
    hostile = _submit_hostile(devnet, console)
    if hostile:
        console.print(f"the proposers start once the verifiers have dealt with them (at most "
                      f"{HOSTILE_PHASE_MAX_S:.0f} s)")
    names = _names(layout)
    states = _node_states(layout)
    deadline = t0 + options.timeout_s
    previous: Snapshot | None = None
    events: list[str] = []
    last_check = last_news = first_started = 0.0
    stalled = ""

    def down() -> dict[str, str]:
        running = {p.name: p.alive() for p in launcher.processes}
        return {n.name: "not started yet" if n.name not in running else "exited"
                for n in plan.nodes if not running.get(n.name)}

    def step(refresh: Callable[[Snapshot], None]) -> bool:
        nonlocal previous, last_check, last_news, stalled, first_started
        launcher.check_alive()
        snap = poll(states, target=layout.target, names=names, t0=t0,
                    source_order=HONEST_VERIFIERS, down=down())
        news = diff_events(previous, snap)
        if news or previous is None:
            last_news = time.monotonic()
        events.extend(f"{snap.elapsed_s:4.0f}s {line}" for line in news)
        previous = snap
        waiting = [name for name in proposers if name not in launcher.started]
        if time.monotonic() - last_check < DONE_CHECK_S:
            refresh(snap)
            return False
        last_check = time.monotonic()
        outcome = gather_outcome(layout, snap, hostile, devnet.description)
        now = time.monotonic()
        if proposers[0] in waiting:
            if hostile_dealt_with(outcome) or snap.elapsed_s > HOSTILE_PHASE_MAX_S:
                launcher.start(proposers[:1])
                first_started = now
                events.append(f"{snap.elapsed_s:4.0f}s {proposers[0]} starts")
        elif waiting and (outcome.experiments.get(proposers[0])
                          or now - first_started > STAGGER_MAX_S):
            launcher.start(waiting)
            events.append(f"{snap.elapsed_s:4.0f}s {' and '.join(waiting)} "
                          f"start{'s' if len(waiting) == 1 else ''}")
        refresh(snap)
        if waiting:
            return False
        if check_done(outcome).ok:
            return True
        quiet = time.monotonic() - last_news
        if quiet > STALL_S and all(outcome.proposers_idle.values()) \
                and not unresolved(outcome):
            stalled = (f"Nothing has changed for {quiet:.0f} s, the proposers are idle and no "
                       "commit waits for verdicts")
            return True
        return False

    finished = interrupted = False
    try:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while time.monotonic() < deadline and not finished:
                    finished = step(lambda s: live.update(render(s, events)))
                    time.sleep(POLL_S)
        else:
            printed = 0
            while time.monotonic() < deadline and not finished:
                finished = step(lambda s: None)
                for line in events[printed:]:
                    console.print(line, highlight=False)
                printed = len(events)
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        interrupted = True  # still show where the network got to, then stop it

    final = poll(states, target=layout.target, names=names, t0=t0,
                 source_order=HONEST_VERIFIERS, down=down())
    outcome = gather_outcome(layout, final, hostile, devnet.description, complete=True)
    done = check_done(outcome)
    console.print(render_summary(build_summary(outcome)))
    write_report(layout, done, final.elapsed_s, {p.name: p.pid for p in launcher.processes},
                 hostile)
    if done.ok:
        console.print(f"[bold green]Done in {final.elapsed_s:.0f} s: every patch resolved, the "
                      "Byzantine verifier slashed, all nodes on the same final head.[/]")
    else:
        why = "Interrupted" if interrupted else stalled or \
            f"Timed out after {options.timeout_s:.0f} s (raise it with --timeout)"
        console.print(f"[bold yellow]{why}; still missing:[/]\n"
                      + "\n".join(f"  - {m}" for m in done.missing)
                      + f"\nThe nodes' logs are in {layout.root / LOG_DIR}/.")
    if interrupted:
        return 130
    if options.exit_when_done:
        return 0 if done.ok else 1
    if len(launcher.started) < len(plan.nodes):
        launcher.start([n.name for n in plan.nodes if n.name not in launcher.started])
    console.print(f"The network stays up: dashboard {plan.node(REFERENCE).http_url}/ "
                  "— press Ctrl-C to stop it.")
    while True:
        launcher.check_alive()
        time.sleep(2.0)
