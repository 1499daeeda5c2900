"""Errors the contracts raise (docs/PROTOCOL.md, "Contracts", §Driving the ledger).

The rules themselves never raise: a stake transaction, evidence, challenge or ruling that breaks
a rule is a recorded no-op. These errors are for callers that hand the ledger something it can
never use (another target's object, a commit that does not extend the finalized chain).
"""

from __future__ import annotations


class ContractError(Exception):
    """Base of the contracts' errors; the ledger is unchanged when one is raised."""


class WrongTargetError(ContractError, ValueError):
    """The object belongs to another target's DAG."""


class ChainOrderError(ContractError, ValueError):
    """A final commit does not extend the finalized chain the ledger holds (its first parent is
    not the ledger's last final commit). Final commits must be applied in chain order."""
