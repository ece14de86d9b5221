"""Execution: orders from decisions, paper fills or the venue, reconciled and recorded."""
