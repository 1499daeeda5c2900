"""poi node package."""
