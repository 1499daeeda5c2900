"""``poi devnet``: a local network of real node processes, end to end (node/devnet/)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``devnet`` command to the ``poi`` CLI."""

    @app.command()
    def devnet(
        dir: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory: node data, "
                                 "keys, logs (a previous devnet's is cleared)."),
        full: bool = typer.Option(False, "--full", help="The real-size target (2^20 rows, all "
                                  "cores) instead of the quick one: much slower."),
        byzantine: str = typer.Option("lie", "--byzantine", help="How the Byzantine verifier "
                                      "misbehaves: lie (improved on everything) or "
                                      "equivocate (two verdicts per commit)."),
        exit_when_done: bool = typer.Option(False, "--exit-when-done", help="Stop the network "
                                            "after the summary (exit 0 only if the demo showed "
                                            "everything) instead of staying up until Ctrl-C."),
        timeout: float = typer.Option(600.0, "--timeout", help="Seconds the running network "
                                      "gets to show everything (after set-up) before the "
                                      "summary says what is missing."),
        hostile: str = typer.Option("default", "--hostile", help="Hostile patches the "
                                    "adversary submits: default, all, none, or numbers "
                                    "like 01,05."),
        pairs: int = typer.Option(0, "--pairs", help="Paired benchmark runs per verification "
                                  "(0: the target's own stats.pairs)."),
    ) -> None:
        """Run a whole poi network on this machine: proposers, verifiers with stake, one
        Byzantine verifier and an adversary submitting hostile patches; watch it decide."""
        from .devnet.run import DevnetOptions, run_devnet

        options = DevnetOptions(dir=dir, full=full, byzantine=byzantine,
                                exit_when_done=exit_when_done, timeout_s=timeout,
                                hostile=hostile, pairs=pairs)
        raise typer.Exit(run_devnet(options))
