"""The feature actor's Ray shell (`actor.py`); its core is `pipeline/features/core.py`."""
