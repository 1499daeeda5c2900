"""poi dag package."""
