"""Execution: orders from decisions, paper fills or the venue, reconciled and recorded. The pure core
(`core.py`), the venue protocol and the paper venue (`venue.py`), and the stage (`stage.py`) that
writes the core's steps in journal transactions and submits them to the venue. Its Ray shell is
`actors/execution/actor.py`."""
