"""The roles a node can run besides observing: the verifier (verifier.py) and its devnet-only
misbehaviours (byzantine.py). The proposer role lives in proposer/role.py."""

from .byzantine import EQUIVOCATE, HONEST, LIE, MODES
from .verifier import VerifierNode, VerifierRole, gate_claim

__all__ = ["EQUIVOCATE", "HONEST", "LIE", "MODES", "VerifierNode", "VerifierRole", "gate_claim"]
