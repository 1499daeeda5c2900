"""``poi propose``: run the autoresearch loop on this machine (DESIGN §9), or render its log.

    poi propose --target MANIFEST --data-dir DIR [--strategy patches|claude] [--patches DIR]
                [--node http://127.0.0.1:PORT] [budgets…]
    poi propose --log WORK_DIR/log.jsonl [--plot run.png]

Commits are signed with the key of the node in ``--data-dir`` (made by ``poi init``) and stored
in its store. The target is the one that store (or a genesis file of its config) holds for the
manifest; with ``--node`` the running node's target and canonical head are used, and every kept
commit is also submitted to it (``POST /v1/commits``, a bundle of the commit, its tree and its
blobs) — the node validates, stores and gossips it. Without either, a local-only target is made
from the manifest (your key as its only validator), for experiments that never leave this
machine. Evaluation is always local, with the verifier's own pipeline.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import typer

from .http_client import NodeClient, NodeRequestError

NODE_TIMEOUT_S = 60


class ProposeError(Exception):
    """Something the user must fix; the message says what."""


@dataclass
class ProposeOptions:
    target: Path | None
    data_dir: Path | None
    strategy: str
    patches: Path | None
    work_dir: Path | None
    pairs: int
    max_iterations: int
    max_total_tokens: int
    max_dollars: float
    plateau: int
    model: str | None
    max_tokens: int | None
    temperature: float | None
    price: str | None
    node: str | None
    start: str | None
    fresh: bool
    sandbox: bool


def register(app: typer.Typer) -> None:
    """Add the ``propose`` command to the ``poi`` CLI."""

    @app.command()
    def propose(
        target: Path = typer.Option(None, "--target", help="Target manifest (TOML), e.g. "
                                    "examples/plonky3/targets/avx2-quick.toml."),
        data_dir: Path = typer.Option(None, "--data-dir", help="Data directory of a node made "
                                      "by `poi init`: its key signs, its store keeps commits."),
        strategy: str = typer.Option("patches", "--strategy", help="patches or claude."),
        patches: Path = typer.Option(None, "--patches", help="Directory of patches, applied "
                                     "in name order (patches strategy)."),
        work_dir: Path = typer.Option(None, "--work-dir", help="Log, memory file, working "
                                      "copy and build cache (default DATA_DIR/work/"
                                      "propose-NAME)."),
        pairs: int = typer.Option(0, "--pairs", help="Paired benchmark runs per experiment "
                                  "(0: the target's proposer_pairs)."),
        max_iterations: int = typer.Option(0, "--max-iterations", help="Stop after this many "
                                           "experiments (0: no limit)."),
        max_total_tokens: int = typer.Option(0, "--max-total-tokens", help="Stop once the "
                                             "run has used this many tokens (0: no limit)."),
        max_dollars: float = typer.Option(0.0, "--max-dollars", help="Stop once the run has "
                                          "cost this many US dollars (0: no limit)."),
        plateau: int = typer.Option(0, "--plateau", help="Stop after this many experiments "
                                    "in a row without a keep (0: never)."),
        model: str = typer.Option(None, "--model", help="Claude model (default: the config's "
                                  "proposer.model)."),
        max_tokens: int = typer.Option(None, "--max-tokens", help="max_tokens per response "
                                       "(default: the config's, 20000)."),
        temperature: float = typer.Option(None, "--temperature", help="Sampling temperature "
                                          "(default: the API's)."),
        price: str = typer.Option(None, "--price", help="IN,OUT US dollars per million tokens "
                                  "for a model the built-in price table does not know."),
        node: str = typer.Option(None, "--node", help="URL of a running node's HTTP API: "
                                 "start from its head and submit kept commits to it."),
        start: str = typer.Option(None, "--from", help="Start from this stored commit CID."),
        fresh: bool = typer.Option(False, "--fresh", help="Do not resume from the log's last "
                                   "kept commit (the log is still appended to)."),
        unsafe_no_sandbox: bool = typer.Option(
            False, "--unsafe-no-sandbox",
            help="Run candidate code WITHOUT bubblewrap (trusted local experiments only)."),
        log: Path = typer.Option(None, "--log", help="Print the summary of a run's log "
                                 "(log.jsonl), draw its staircase plot, and exit."),
        plot: Path = typer.Option(None, "--plot", help="Where --log writes the PNG (default: "
                                  "beside the log)."),
    ) -> None:
        """Propose improvements: each experiment is evaluated here exactly as a verifier
        would; kept ones become signed commits (published to --node when given).

        Exit status: 0 when the run ended (a budget, a plateau, or nothing left to try),
        2 on an error.
        """
        if log is not None:
            raise typer.Exit(render_log(log, plot))
        options = ProposeOptions(
            target=target, data_dir=data_dir, strategy=strategy, patches=patches,
            work_dir=work_dir, pairs=pairs, max_iterations=max_iterations,
            max_total_tokens=max_total_tokens, max_dollars=max_dollars, plateau=plateau,
            model=model, max_tokens=max_tokens, temperature=temperature, price=price, node=node,
            start=start, fresh=fresh, sandbox=not unsafe_no_sandbox)
        raise typer.Exit(run_propose(options))


# -- rendering a log ------------------------------------------------------------------------------

def render_log(path: Path, plot: Path | None) -> int:
    from proposer.log import ExperimentLog, summarize
    from proposer.plot import staircase_png

    if not Path(path).is_file():
        typer.echo(f"error: {path} does not exist", err=True)
        return 2
    rows = ExperimentLog(path).rows()
    typer.echo(summarize(rows))
    out = staircase_png(rows, plot or Path(path).with_suffix(".png"))
    typer.echo(f"staircase plot: {out}")
    return 0


# -- running --------------------------------------------------------------------------------------

def run_propose(opts: ProposeOptions) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    try:
        return _run(opts, console)
    except (ProposeError, NodeRequestError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


def _run(opts: ProposeOptions, console) -> int:
    from dag.manifest import ManifestError, load_manifest
    from dag.store import Store
    from proposer.budget import Budget
    from proposer.log import summarize
    from proposer.loop import PipelineEvaluator, ProposerError, ProposerLoop
    from protocol.cid import CID
    from protocol.errors import ProtocolError
    from verifier.pipeline import EvaluationError, Pipeline

    from .config import ConfigError, load_config

    if opts.target is None or opts.data_dir is None:
        raise ProposeError("poi propose needs --target MANIFEST and --data-dir DIR (a node made "
                           "by `poi init`), or --log FILE to render a run")
    if opts.strategy not in ("patches", "claude"):
        raise ProposeError(f"--strategy {opts.strategy!r}: choose patches or claude")
    if opts.strategy == "patches" and opts.patches is None:
        raise ProposeError("the patches strategy needs --patches DIR")
    try:
        config = load_config(opts.data_dir)
        manifest = load_manifest(opts.target)
    except (ConfigError, ManifestError) as exc:
        raise ProposeError(str(exc)) from None
    strategy = _strategy(opts, config)
    key = _key(opts.data_dir)
    if not opts.sandbox:
        console.print("[bold red]WARNING: --unsafe-no-sandbox: candidate code runs with your "
                      "privileges, network and files.[/]")
    client = NodeClient(opts.node, timeout=NODE_TIMEOUT_S) if opts.node else None
    store = Store(Path(opts.data_dir) / "store.sqlite")
    try:
        target, base_tree, info = _resolve_target(manifest, store, config, opts.data_dir, key,
                                                  client, console)
        work_dir = opts.work_dir or Path(opts.data_dir) / "work" / f"propose-{target.name}"
        start = None
        if opts.start:
            start = CID.parse(opts.start)
        elif client is not None:
            start = _node_head(client, store, target, base_tree, info, console)
        try:
            pipeline = Pipeline(target, base_tree, Path(work_dir) / "eval", sandbox=opts.sandbox,
                                bench_lock=config.verifier.bench_lock)
        except EvaluationError as exc:
            raise ProposeError(str(exc)) from None
        budget = Budget(max_iterations=opts.max_iterations or None,
                        max_tokens=opts.max_total_tokens or None,
                        max_dollars=opts.max_dollars or None, plateau=opts.plateau or None)

        def publish(objects: list) -> None:
            store.put_many(objects)
            if client is not None:
                _submit(client, objects, console)

        try:
            loop = ProposerLoop(target=target, base_tree=base_tree, store=store, key=key,
                                strategy=strategy, evaluator=PipelineEvaluator(
                                    pipeline, opts.pairs or None),
                                work_dir=work_dir, start=start, budget=budget, publish=publish,
                                resume=not opts.fresh, on_row=lambda row: _print_row(console,
                                                                                     row))
        except ProposerError as exc:
            raise ProposeError(str(exc)) from None
        console.print(f"target {target.name} ({target.cid})\nstarting from "
                      f"{loop.best.commit}{' (resumed from the log)' if loop.resumed_from else ''}"
                      f"; log {loop.log.path}, memory {loop.memory.path}")
        reason = loop.run()
        console.print(f"stopped: {reason}")
        typer.echo(summarize(loop.log.rows()))
        return 0
    except ProtocolError as exc:
        raise ProposeError(str(exc)) from None
    finally:
        store.close()


def _strategy(opts: ProposeOptions, config):
    if opts.strategy == "patches":
        from proposer.strategies.patches import PatchStrategy

        try:
            return PatchStrategy.from_directory(opts.patches)
        except FileNotFoundError as exc:
            raise ProposeError(str(exc)) from None
    from proposer.budget import parse_price
    from proposer.strategies.claude import ClaudeStrategy, MissingAPIKey

    try:
        price = parse_price(opts.price) if opts.price else None
        strategy = ClaudeStrategy(model=opts.model or config.proposer.model,
                                  max_tokens=opts.max_tokens or config.proposer.max_tokens,
                                  temperature=opts.temperature, pairs=opts.pairs or None,
                                  price=price,
                                  base_url=os.environ.get("ANTHROPIC_BASE_URL") or None)
    except (MissingAPIKey, ValueError) as exc:
        raise ProposeError(str(exc)) from None
    if not strategy.price_known:
        typer.echo(f"note: no price known for {strategy.model}: dollars are counted at "
                   f"${strategy.price.input:g}/${strategy.price.output:g} per million tokens "
                   "(set --price IN,OUT)", err=True)
    return strategy


def _key(data_dir: Path):
    from protocol.errors import KeystoreError

    from .keystore import PASSPHRASE_ENV, SEALED_NAME, load_key

    keys = Path(data_dir) / "keys"
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if (keys / SEALED_NAME).exists() and not passphrase:
        passphrase = typer.prompt("Passphrase for the node key", hide_input=True)
    try:
        return load_key(keys, passphrase).key
    except KeystoreError as exc:
        raise ProposeError(str(exc)) from None


def _resolve_target(manifest, store, config, data_dir, key, client, console):
    """The target this manifest stands for: the node's (--node), one the store or a genesis
    file holds, or else a local-only one. Returns (target, base tree, node target info)."""
    from dag.manifest import make_genesis
    from protocol.objects import Target

    from .genesis_file import GenesisFileError, load_genesis_file

    local = make_genesis(manifest, [(key.public_key, 1)], genesis_time_ms=0)
    store.put_many(local.objects()[:-1])  # the base tree and its blobs

    def same(target: Target) -> bool:
        return (target.name == manifest.name and target.base_tree == local.base_tree.cid
                and target.commands == manifest.commands and target.writable == manifest.writable
                and target.stats == manifest.stats and target.limits == manifest.limits)

    if client is not None:
        infos = [i for i in client.get("/v1/targets") if i.get("name") == manifest.name]
        if not infos:
            raise ProposeError(f"the node at {client.url} follows no target named "
                               f"{manifest.name!r}")
        info = infos[0]
        genesis = make_genesis(manifest, [(bytes.fromhex(v["key"]), v["stake"])
                                          for v in info["validators"]],
                               genesis_time_ms=info["genesis_time_ms"],
                               epoch_seconds=info["epoch_seconds"],
                               quorum_ppm=info["quorum_ppm"])
        if str(genesis.target.cid) != info["cid"]:
            raise ProposeError(f"{manifest.path} does not describe the node's target "
                               f"{info['cid']} (its commands, stats, limits or files differ)")
        store.put(genesis.target)
        return genesis.target, genesis.base_tree, info
    found = [t for t in (store.get(c) for c in store.targets()) if isinstance(t, Target)
             and same(t)]
    if not found:
        for name in config.targets.genesis_files:
            try:
                loaded = load_genesis_file(Path(data_dir) / name, store)
            except GenesisFileError as exc:
                raise ProposeError(str(exc)) from None
            for target in loaded:
                if same(target):
                    found.append(target)
    followed = [t for t in found if str(t.cid) in config.targets.follow]
    found = followed or found
    if len({t.cid for t in found}) > 1:
        raise ProposeError(f"several targets in {data_dir} match {manifest.path}: "
                           + ", ".join(str(t.cid) for t in found)
                           + " — add the one you mean to targets.follow in its config.toml")
    if found:
        return found[0], local.base_tree, None
    console.print("[yellow]note:[/] no network target matches this manifest: using a "
                  "local-only target (your key as its only validator)")
    store.put(local.target)
    return local.target, local.base_tree, None


def _node_head(client, store, target, base_tree, info, console):
    """The node's canonical head as a start `Base`: from the local store when it holds it,
    else rebuilt from the node's patches along the head's lineage (and checked against the
    head's tree CID)."""
    from dag.workspace import blob_reader
    from proposer.loop import Base
    from protocol.cid import CID
    from verifier.candidates import (
        CandidateError,
        apply_patch,
        workspace_from_directory,
        workspace_from_tree,
    )

    head = CID.parse(info["head"])
    if head == target.cid or store.has(head):
        return head
    lineage = client.get(f"/v1/commits/{head}/lineage")
    workspace = workspace_from_tree(target, base_tree, None, blob_reader({}, store.get_bytes))
    with tempfile.TemporaryDirectory(prefix="poi-head-") as tmp:
        root = Path(tmp) / "ws"
        workspace.materialize(root)
        for cid in reversed(lineage[:-1]):
            try:
                apply_patch(client.get_text(f"/v1/commits/{cid}/patch"), root)
            except CandidateError as exc:
                raise ProposeError(f"cannot rebuild the head from the node's patches: {exc}"
                                   ) from None
        rebuilt = workspace_from_directory(target, base_tree, root, label=str(head))
    expected = client.get(f"/v1/commits/{head}")["tree"]
    if str(rebuilt.commit_tree.cid) != expected:
        raise ProposeError(f"the workspace rebuilt from the node's patches has tree "
                           f"{rebuilt.commit_tree.cid}, but the head {head} names {expected}")
    console.print(f"starting from the node's head {head} ({len(lineage) - 1} commits)")
    return Base(head, rebuilt)


def _submit(client, objects: list, console) -> None:
    from .bundle import encode_bundle

    commit = objects[-1]
    try:
        result = client.post_bundle("/v1/commits", encode_bundle([o.encode() for o in objects]))
    except NodeRequestError as exc:
        console.print(f"[yellow]warning:[/] {commit.cid} is stored locally but the node did "
                      f"not take it: {exc}")
        return
    if str(commit.cid) in result.get("accepted", []):
        console.print(f"submitted {commit.cid} to {client.url}")
    else:
        console.print(f"[yellow]warning:[/] the node did not accept {commit.cid}: "
                      f"rejected {result.get('rejected')}, ignored {result.get('ignored')}")


def _print_row(console, row) -> None:
    colour = {"keep": "green", "discard": "yellow", "skipped": "dim"}.get(row.status, "red")
    ratio = f"ratio {row.ratio_ppm / 1e6:.4f} [{row.lo_ppm / 1e6:.4f}, {row.hi_ppm / 1e6:.4f}]" \
        if row.ratio_ppm else ""
    console.print(f"#{row.iteration} [{colour}]{row.status}[/] {ratio} {row.description[:80]}")
    if row.commit:
        console.print(f"    commit {row.commit}")
    elif row.detail and row.status != "discard":
        console.print(f"    {row.detail.splitlines()[0][:200]}")
