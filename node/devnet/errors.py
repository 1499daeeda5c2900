"""The devnet's one error: something a user can act on, said in a sentence."""

from __future__ import annotations


class DevnetError(Exception):
    """The devnet cannot start or go on; the message says why and what to do."""
