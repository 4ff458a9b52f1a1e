"""Deterministic causal RCA over metrics and change events."""
