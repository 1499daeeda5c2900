"""``poi verify``: evaluate a patch or a stored commit locally, with a progress display."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dag.manifest import ManifestError
from dag.store import Store
from protocol.cid import CID
from protocol.errors import ProtocolError
from protocol.objects import Commit, Target
from verifier.candidates import CandidateError, workspace_from_store
from verifier.local import evaluate_patch_file
from verifier.pipeline import Evaluation, EvaluationError, Pipeline
from verifier.sandbox import SandboxError

STAGES = {"scope": "checking scope", "build": "building parent and candidate",
          "gate": "running the gate", "bench": "paired benchmark", "done": "done"}


def run_verify(what: str, *, target: Path | None, data_dir: Path | None, pairs: int | None,
               on_baseline: bool, work_dir: Path, sandbox: bool) -> int:
    console = Console(stderr=True)
    out = Console()
    if not sandbox:
        console.print("[bold red]WARNING: --unsafe-no-sandbox: the patch's code runs with your "
                      "privileges, network and files.[/]")
    started = time.monotonic()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("starting", total=1)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=STAGES.get(stage, stage), completed=done,
                           total=max(total, 1))

            if Path(what).exists():
                if target is None:
                    return _error(console, "a patch needs --target MANIFEST")
                result = evaluate_patch_file(target, Path(what), work_dir=work_dir, pairs=pairs,
                                             sandbox=sandbox, on_baseline=on_baseline,
                                             progress=progress)
                evaluation, parent, candidate = (result.evaluation, result.parent_label,
                                                 result.candidate_label)
            else:
                evaluation, parent, candidate = _verify_commit(what, data_dir, pairs, work_dir,
                                                               sandbox, progress)
    except (ManifestError, CandidateError, EvaluationError, SandboxError, ProtocolError,
            OSError) as exc:
        return _error(console, str(exc))
    _report(out, evaluation, parent, candidate, time.monotonic() - started)
    return 0 if evaluation.result == "improved" else 1


def _verify_commit(what, data_dir, pairs, work_dir, sandbox, progress):
    try:
        cid = CID.parse(what)
    except ProtocolError:
        raise CandidateError(f"{what!r} is neither an existing patch file nor a CID") from None
    if data_dir is None:
        raise CandidateError("a commit CID needs --data-dir (a node's data directory)")
    store = Store(Path(data_dir) / "store.sqlite")
    try:
        commit = store.get(cid)
        if not isinstance(commit, Commit):
            raise CandidateError(f"{cid} is not a commit in {data_dir}")
        target = store.get(commit.target)
        if not isinstance(target, Target):
            raise CandidateError(f"target {commit.target} is not in {data_dir}")
        parent = workspace_from_store(store, target, commit.parents[0])
        candidate = workspace_from_store(store, target, cid)
        base_tree = store.get(target.base_tree)
        pipeline = Pipeline(target, base_tree, work_dir, sandbox=sandbox, progress=progress)
        return pipeline.evaluate(parent, candidate, pairs=pairs), str(commit.parents[0]), str(cid)
    finally:
        store.close()


def _error(console: Console, message: str) -> int:
    console.print(f"[red]error:[/] {message}")
    return 2


def _report(out: Console, ev: Evaluation, parent: str, candidate: str, wall: float) -> None:
    colour = {"improved": "green", "not_improved": "yellow"}.get(ev.result, "red")
    out.print(f"[bold {colour}]{ev.result}[/]  {candidate}  (against {parent})")
    if ev.measured:
        est = ev.estimate
        gain = (1 - est.ratio_ppm / 1e6) * 100
        out.print(f"ratio candidate/parent {est.ratio_ppm / 1e6:.4f}  "
                  f"95% interval [{est.lo_ppm / 1e6:.4f}, {est.hi_ppm / 1e6:.4f}]  "
                  f"({gain:+.2f}% faster, {est.pairs} pairs)")
    elif ev.detail:
        out.print(ev.detail)
    table = Table(show_header=True, header_style="bold")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step in ev.timings:
        table.add_row(step.step + (" (cached)" if step.cached else ""), f"{step.wall_s:.2f}")
    table.add_row("total", f"{wall:.2f}")
    out.print(table)
    out.print(f"gate seed (re-run the gate with it): {ev.gate_seed.hex()}")
    out.print(f"profile {ev.profile}, toolchain {ev.toolchain}")
