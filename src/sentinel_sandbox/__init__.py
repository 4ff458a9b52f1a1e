"""Simulated microservice cluster for demos, tests and benchmarks (never imported by sentinel)."""
