"""The feature actor: final candles to gated market features, in order, once."""
