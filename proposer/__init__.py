"""poi proposer package."""
