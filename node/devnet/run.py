"""``poi devnet``: a whole network of real node processes on 127.0.0.1, end to end.

    plan (ports, who runs what) → print the dashboard URL → keys and genesis → data dirs →
    fill the shared build cache → start the verifiers → the adversary submits the hostile
    commits → once they are dealt with, start the proposers → watch (live view) until done,
    stalled or the deadline → summary (and summary.json with every node's own answers) →
    stay up until Ctrl-C, or stop (--exit-when-done)

Every node process is stopped by PID on the way out, whatever the way out is.

Time budget of a default run on a 2-core machine: one run of the quick bench takes ≈ 0.25 s with
its sandbox, so a pair ≈ 0.5 s and an evaluation at the target's 31 pairs ≈ 15.5 s of benchmark,
and the host-wide bench lock serialises every benchmark. Proposer-1 evaluates its 5 patches at the
target's proposer pairs, proposer-2 its one, and the three honest verifiers each evaluate the 4–6
published good commits (3 × 5 × 15.5 s ≈ 230 s): ≈ 300 s of benchmarks in a row. The hostile
commits cost gates only (≈ 1 s each, builds are cached): ≈ 10–30 s before the proposers start.
Gates, finality and the slash overlap the benchmarks. Filling the build cache takes ≈ 50 s the
first time (14 release builds), nothing on a rerun in the same directory; setting up the virtual
environment and building the example ≈ 40 s from local wheels. Total ≈ 6–7 min; ``--pairs 9`` for
the verifiers saves ≈ 1.5 min at the price of wider intervals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
from protocol.keys import SigningKey
from verifier.candidates import read_patch
from verifier.hardware import HardwareError
from verifier.pipeline import EvaluationError
from verifier.sandbox import SandboxError

from .errors import DevnetError
from .genesis import (
    DEVNET_EPOCH_SECONDS,
    EXAMPLE,
    GENESIS_STAKE,
    build_genesis,
    generate_keys,
    genesis_bundle,
    host_profile,
    manifest_path,
    validator_stakes,
)
from .hostile import hostile_commit
from .launch import NODE_NICE, Launcher, http_json
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
    share_build_cache,
    write_layout,
)
from .prebuild import prebuild, workspaces
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

DEFAULT_DIR = Path("devnet")
DEFAULT_TIMEOUT_S = 600
DEVNET_PAIRS = 0
"""Paired benchmark runs per verification: 0 is the target's own ``stats.pairs`` (21 for the
quick target). Fewer (``--pairs``) save ≈ 0.5 s per pair per verification; on a busy two-core
machine 15 pairs already left a real 6% improvement not_improved on all three verifiers once.
The proposers always measure with the target's ``stats.pairs`` (genesis.build_genesis)."""
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
proposers started together. That first patch is the root of the whole chain 02 → 06, so it gets
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
    dir: Path = DEFAULT_DIR
    full: bool = False
    byzantine: str = "lie"
    exit_when_done: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    hostile: str = "default"
    pairs: int = DEVNET_PAIRS


def run_devnet(options: DevnetOptions, console: Console | None = None) -> int:
    """Run a devnet; returns the exit status (0: everything the demo promises happened)."""
    console = console or Console()
    launcher: Launcher | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C even where a shell started us with SIGINT ignored (a background job).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        devnet = _set_up(options, console)
        launcher = Launcher(devnet.layout, cpus=devnet.layout.cpus,
                            nice=NODE_NICE if os.geteuid() == 0 else 0)
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
    if shutil.which("bwrap") is None:
        raise DevnetError("bubblewrap (bwrap) is not installed: verifiers run proposer code only "
                          "inside its sandbox. Install it (apt-get install bubblewrap; `make "
                          "demo` does this when run as root).")


@dataclass
class Devnet:
    layout: Layout
    genesis: Genesis
    description: str
    """The target in words, for the summary's speed-up line."""
    adversary: SigningKey


def _set_up(options: DevnetOptions, console: Console) -> Devnet:
    profile = host_profile()
    manifest = manifest_path(profile, full=options.full)
    good = read_patches(EXAMPLE / "patches" / "good")
    hostile_names = [p.name for p in read_patches(EXAMPLE / "patches" / "hostile")]
    hostile = select_hostile(options.hostile, profile, hostile_names)
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
    loaded = load_manifest(manifest)
    genesis = build_genesis(manifest, stakes, genesis_time_ms=int(time.time() * 1000),
                            proposer_pairs=loaded.stats.pairs)
    cpus = {} if options.full else assign_cpus(plan, sorted(os.sched_getaffinity(0)))
    layout = write_layout(root, plan, keys, genesis_bundle(genesis), str(genesis.target.cid),
                          cpus=cpus)
    description = loaded.description.split(":")[0]
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
    gate_failing = [h for h in hostile
                    if read_patch(EXAMPLE / "patches" / "hostile" / h).expect == "gate_failed"]
    if options.byzantine == "lie" and not gate_failing:
        console.print("[yellow]note: the lying verifier is slashed through a challenge of its "
                      "claim that a gate-failing commit passed the gate; none of the chosen "
                      "hostile patches fails the gate, so expect no slash[/]")
    _prebuild(layout, genesis, good, console)
    return Devnet(layout, genesis, description, keys[ADVERSARY])


def _prebuild(layout: Layout, genesis: Genesis, good: list, console: Console) -> None:
    """Fill the shared build cache first (node/devnet/prebuild.py says why)."""
    started = time.monotonic()
    work = layout.root / "prebuild"
    share_build_cache(work, ["prebuild"], "", layout.root / BUILD_CACHE, direct=True)
    hostile = [read_patch(EXAMPLE / "patches" / "hostile" / n) for n in layout.plan.hostile]
    with tempfile.TemporaryDirectory(prefix="scratch-", dir=layout.root) as scratch:
        items = workspaces(genesis, good, hostile, Path(scratch))
    with console.status("building the workspaces …") as status:
        def report(done: int, total: int, label: str, seconds: float, cached: bool) -> None:
            status.update(f"building the workspaces into the shared cache: {done}/{total} "
                          f"({label}{', cached' if cached else f', {seconds:.0f} s'})")
        try:
            built = prebuild(genesis, items, work, on_build=report)
        except (EvaluationError, SandboxError, HardwareError, OSError) as exc:
            raise DevnetError(f"cannot build the example target here: {exc}") from None
    console.print(f"{len(items)} workspaces in the shared build cache ({built} built now, "
                  f"{len(items) - built} reused) in {time.monotonic() - started:.0f} s")


def _names(layout: Layout) -> dict[str, str]:
    return {key: name for name, key in layout.public_keys.items()}


def _node_states(layout: Layout) -> list[NodeState]:
    return [NodeState(n.name, n.roles, n.http_url) for n in layout.plan.nodes]


def _submit_hostile(devnet: Devnet, console: Console) -> dict[str, dict]:
    """The adversary signs each hostile patch as a commit and posts it to a node."""
    layout = devnet.layout
    if not layout.plan.hostile:
        return {}
    key = devnet.adversary
    via = layout.plan.node(REFERENCE)
    hostile_dir = EXAMPLE / "patches" / "hostile"
    submitted: dict[str, dict] = {}
    for name in layout.plan.hostile:
        commit = hostile_commit(devnet.genesis, read_patch(hostile_dir / name), key,
                                time_ms=int(time.time() * 1000))
        try:
            answer = http_json(f"{via.http_url}/v1/commits", data=encode_bundle(commit.objects),
                               content_type="application/x-poi-bundle", timeout=30.0)
        except OSError as exc:
            raise DevnetError(f"{via.name} refused the adversary's commit for {name}: "
                              f"{_http_error_text(exc)}") from None
        if commit.cid not in (answer.get("accepted") or []):
            console.print(f"[yellow]{via.name} did not take {name}: {answer}[/]")
            continue
        submitted[commit.cid] = {"patch": name, "expect": commit.expect,
                                 "threat": commit.threat, "title": commit.title}
    (layout.root / HOSTILE_NAME).write_text(json.dumps(submitted, indent=2) + "\n")
    console.print(f"{ADVERSARY} submitted {len(submitted)} hostile commits through "
                  f"{via.name}'s HTTP API")
    return submitted


def _http_error_text(exc: OSError) -> str:
    body = getattr(exc, "read", None)
    if callable(body):
        try:
            return f"{exc}: {body().decode('utf-8', 'replace')[:500]}"
        except OSError:
            pass
    return str(exc)


PROPOSER_LOG = Path("work") / "proposer-repo" / "log.jsonl"
"""The experiment log of a node's proposer role (node/runtime.py ``_start_proposer``)."""


def proposer_idle(status: dict | None, log_rows: list[dict], patches: Sequence[str]) -> bool:
    """Whether a proposer has worked through its patches (pure): its role's state when the
    node reports one (``status["proposer"]["state"] == "idle"``), else its experiment log
    holds a row for every patch it was given."""
    proposer = (status or {}).get("proposer")
    if isinstance(proposer, dict) and "state" in proposer:
        return proposer["state"] == "idle"
    tried = {row.get("patch") for row in log_rows}
    return all(name in tried for name in patches)


def read_log_rows(path: Path) -> list[dict]:
    rows = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def gather_outcome(layout: Layout, snap: Snapshot, hostile: dict[str, dict],
                   description: str = "") -> Outcome:
    """The summary's inputs: the snapshot plus the chain and verdicts from the reference."""
    source = next((n for n in snap.nodes if n.name == snap.source), None)
    chain: dict = {"steps": [], "speedup": 1.0}
    attestations: dict[str, list[dict]] = {}
    if source is not None:
        try:
            chain = http_json(f"{source.url}/v1/targets/{layout.target}/chain")
            on_chain = {s.get("cid") for s in chain.get("steps", [])}
            for node in snap.commits():
                if node["cid"] not in on_chain:
                    attestations[node["cid"]] = http_json(
                        f"{source.url}/v1/commits/{node['cid']}/attestations")
        except (OSError, ValueError):
            pass
    plan = layout.plan
    experiments = {n.name: read_log_rows(layout.node_dir(n.name) / PROPOSER_LOG)
                   for n in plan.proposers}
    ledgers: dict[str, str | None] = {}
    for node in snap.nodes:
        if node.down:
            ledgers[node.name] = None
            continue
        try:
            stakes = snap.stakes if node.name == snap.source and snap.stakes else \
                http_json(f"{node.url}/v1/targets/{layout.target}/stakes")
            ledgers[node.name] = ledger_fingerprint(stakes)
        except (OSError, ValueError):
            ledgers[node.name] = None
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
            report[key] = http_json(url + path)
        except (OSError, ValueError) as exc:
            report[key] = None
            report.setdefault("errors", {})[key] = str(exc)
    return report


def write_report(layout: Layout, done: Done, elapsed_s: float, pids: dict[str, int]) -> Path:
    """``summary.json``: the outcome and every node's own answers, read from its HTTP API."""
    path = layout.root / REPORT_NAME
    path.write_text(json.dumps({
        "done": done.ok, "missing": list(done.missing), "elapsed_s": round(elapsed_s, 1),
        "target": layout.target, "pids": pids,
        "hostile": json.loads((layout.root / HOSTILE_NAME).read_text())
        if (layout.root / HOSTILE_NAME).exists() else {},
        "nodes": {n.name: node_report(n.http_url, layout.target) for n in layout.plan.nodes},
    }, indent=1) + "\n")
    return path


def _run(options: DevnetOptions, console: Console, devnet: Devnet, launcher: Launcher) -> int:
    layout, plan = devnet.layout, devnet.layout.plan
    t0 = time.monotonic()
    # The proposer with the most patches first (see STAGGER_MAX_S), then the others.
    proposers = [n.name for n in sorted(plan.proposers, key=lambda n: -len(n.patches))]
    # Hostile commits first, proposers once the network has dealt with them: see PHASES.
    launcher.start(None if not plan.hostile else
                   [n.name for n in plan.nodes if n.name not in proposers])
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
                    source_order=[REFERENCE, *HONEST_VERIFIERS], down=down(), hostile=hostile)
        news = diff_events(previous, snap)
        if news or previous is None:
            last_news = time.monotonic()
        events.extend(f"{snap.elapsed_s:4.0f}s {line}" for line in news)
        previous = snap
        waiting = [name for name in proposers if name not in launcher.started]
        if not waiting and time.monotonic() - last_check < DONE_CHECK_S:
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
                 source_order=[REFERENCE, *HONEST_VERIFIERS], down=down(), hostile=hostile)
    outcome = gather_outcome(layout, final, hostile, devnet.description)
    done = check_done(outcome)
    console.print(render_summary(build_summary(outcome)))
    write_report(layout, done, final.elapsed_s, {p.name: p.pid for p in launcher.processes})
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
