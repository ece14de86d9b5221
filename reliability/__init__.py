"""The reliability suite: `uv run python -m reliability` (see `__main__` and docs/reliability.md).

It drives the real daemon through the e2e harness (`tests/e2e/daemon_harness.py`): `kill -9` at random
moments, database outages, venue storms, an accelerated soak and a secrets sweep, and fuzzes every input
boundary in process. Each scenario checks the same invariants (`invariants.py`): every candle decided
exactly once and none skipped, no client order id twice, no crash; a scenario that breaks one fails.
"""
