"""poi contracts package."""
