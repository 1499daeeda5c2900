"""Helpers that run p2p nodes in child processes for the multi-process tests."""
