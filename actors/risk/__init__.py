"""The risk guard's and the account guard's Ray shells (`actor.py`); their cores are in
`pipeline/risk/`."""
