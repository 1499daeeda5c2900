"""Proposal strategies: where the next experiment comes from (DESIGN §9)."""

from .patches import PatchStrategy, PrioritizedStrategy

__all__ = ["PatchStrategy", "PrioritizedStrategy"]
