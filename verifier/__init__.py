"""poi verifier package."""
