"""Benchmarks: one workload per file, two drivers (pytest-benchmark and ``python -m benchmarks``)."""
