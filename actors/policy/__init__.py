"""The policy actor's Ray shell (`actor.py`); its core is `pipeline/policy/core.py`, the artifacts and
baselines it loads are in `policies/`."""
