"""Feature sets (v1 without TA, v2 with TA-Lib) and the integrity and quality gates: pure and
deterministic, one code path for training, evaluation and live decisions. Imports only `domain`."""
