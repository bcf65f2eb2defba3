"""Operator and platform tools built on the agent: the town console."""
