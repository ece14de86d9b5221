"""The feed actor's Ray shell (`actor.py`); the ingestion services it runs (backfill, the live stream,
gap healing) are in `market_data/`, which the CLI runs too."""
