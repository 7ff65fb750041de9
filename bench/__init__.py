"""Benchmark helpers for pqwatch: a deterministic synthetic archive generator (bench.generate)."""
