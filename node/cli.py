"""The ``poi`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import typer

from protocol.errors import ProtocolError

app = typer.Typer(
    name="poi",
    help="poi: a proof-of-improvement network. Run nodes, propose and verify improvements, "
         "query the DAG.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DEFAULT_VERIFY_DIR = Path.home() / ".cache" / "poi" / "verify"


def fail(message: str) -> NoReturn:
    """Print a clear error and exit 2: no traceback ever reaches a user for bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """poi: a proof-of-improvement network."""


@app.command()
def init(
    data_dir: Path = typer.Argument(..., help="Directory for the node's key, config and data."),
    role: list[str] = typer.Option(["observer"], "--role", help="observer, verifier, proposer "
                                   "(repeat for several)."),
    listen: list[str] = typer.Option(["/ip4/127.0.0.1/tcp/0"], "--listen",
                                     help="libp2p listen multiaddr (repeatable)."),
    bootstrap: list[str] = typer.Option([], "--bootstrap",
                                        help="A peer's multiaddr with /p2p/<id> (repeatable)."),
    http_port: int = typer.Option(0, "--http-port", help="HTTP API port on 127.0.0.1 "
                                  "(0: pick a free one)."),
    follow: list[str] = typer.Option([], "--follow", help="CID of a target to follow."),
    dev_unencrypted: bool = typer.Option(
        False, "--dev-unencrypted-key",
        help="Store the key UNENCRYPTED (throw-away local networks only)."),
) -> None:
    """Create a node: a signing key (also its libp2p identity) and a config file."""
    from .config import Config, ConfigError, write_config
    from .keystore import PASSPHRASE_ENV, create_key, load_key

    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not dev_unencrypted and not passphrase:
        passphrase = typer.prompt("Passphrase for the node key", hide_input=True,
                                  confirmation_prompt=True)
    config = Config()
    config.node.roles = list(role)
    config.network.listen = list(listen)
    config.network.bootstrap = list(bootstrap)
    config.http.port = http_port
    config.targets.follow = list(follow)
    try:
        config.check()
        create_key(data_dir / "keys", passphrase, dev_unencrypted=dev_unencrypted)
        path = write_config(data_dir, config)
        key = load_key(data_dir / "keys", passphrase).key
    except (ConfigError, ProtocolError) as exc:
        fail(str(exc))
    typer.echo(f"created node in {data_dir}\n  config:  {path}\n  peer ID: {key.peer_id}")


@app.command()
def verify(
    what: str = typer.Argument(..., help="A patch file, or a commit CID (with --data-dir)."),
    target: Path = typer.Option(None, "--target", help="Target manifest (TOML) for a patch, "
                                "e.g. examples/plonky3/targets/avx2-quick.toml."),
    data_dir: Path = typer.Option(None, "--data-dir", help="A node's data directory, to "
                                  "evaluate a commit from its store."),
    pairs: int = typer.Option(0, "--pairs", help="Paired benchmark runs (0: the target's)."),
    on_baseline: bool = typer.Option(False, "--on-baseline", help="Apply the patch to the "
                                     "baseline, ignoring its Depends-On header."),
    work_dir: Path = typer.Option(DEFAULT_VERIFY_DIR, "--work-dir",
                                  help="Build cache and scratch space."),
    unsafe_no_sandbox: bool = typer.Option(
        False, "--unsafe-no-sandbox",
        help="Run proposer code WITHOUT bubblewrap (trusted local experiments only)."),
) -> None:
    """Evaluate a patch or commit on this machine exactly as a verifier would.

    Exit status: 0 improved, 1 any other verdict, 2 an error (nothing evaluated).
    """
    from .verify_cli import run_verify

    raise typer.Exit(run_verify(what, target=target, data_dir=data_dir, pairs=pairs or None,
                                on_baseline=on_baseline, work_dir=work_dir,
                                sandbox=not unsafe_no_sandbox))


@app.command()
def demo() -> None:
    """Run the newest end-to-end capability on this machine and explain what it shows."""
    from .demo import run_demo

    raise typer.Exit(run_demo())


def _register_subcommands() -> None:
    """Each command group lives in its own module; importing them here stays cheap because
    they import their heavy dependencies inside the commands."""
    from importlib import import_module

    for module in ("propose_cli", "run_cli", "dag_cli", "devnet_cli"):
        import_module(f"{__package__}.{module}").register(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
