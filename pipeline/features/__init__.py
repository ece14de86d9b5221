"""The feature role's core: final candles to gated market features, in order, once. Its Ray shell is
`actors/features/actor.py`."""
