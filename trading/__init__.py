"""The trading kernel: the one rule by which a pair's decision becomes orders, and the paper venue that
fills them. Pure and synchronous (no I/O, no clock, no Ray): the live risk guard, the training
environment and the nautilus backtest strategy all run it (docs/architecture.md)."""
