"""Benchmarks, each runnable with one command; figures go to docs/performance.md."""
