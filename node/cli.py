"""The ``poi`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="poi",
    help="poi: a proof-of-improvement network. Run nodes, propose and verify improvements, "
         "query the DAG.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """poi: a proof-of-improvement network."""


@app.command()
def demo() -> None:
    """Run the newest end-to-end capability on this machine and explain what it shows."""
    from .demo import run_demo

    raise typer.Exit(run_demo())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
