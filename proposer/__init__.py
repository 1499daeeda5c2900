"""poi proposer: the autoresearch loop, its strategies, and the node role (DESIGN §9).

`ProposerLoop` (loop.py) is the loop itself, independent of the network; `strategies` holds
where experiments come from (patch files, or Claude through the Messages API); `role.py` wires
the loop to a node: start from the canonical head, publish kept commits at once, follow the head.
"""

from .budget import PRICES, Budget, Usage
from .log import ExperimentLog, Row, summarize
from .loop import (
    Base,
    Context,
    Evaluator,
    PipelineEvaluator,
    Proposal,
    ProposerError,
    ProposerLoop,
    Strategy,
    StrategyError,
)
from .memory import Memory

__all__ = [
    "PRICES", "Base", "Budget", "Context", "Evaluator", "ExperimentLog", "Memory",
    "PipelineEvaluator", "Proposal", "ProposerError", "ProposerLoop", "Row", "Strategy",
    "StrategyError", "Usage", "summarize",
]
