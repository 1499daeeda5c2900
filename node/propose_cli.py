"""``poi propose``: run the autoresearch loop (filled in by the proposer work, issue 9)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``propose`` command to the ``poi`` CLI."""
