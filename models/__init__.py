"""Bundled model packages and their recipes (data, not code)."""
