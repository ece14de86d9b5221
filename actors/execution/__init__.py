"""The execution actor's Ray shell (`actor.py`); the core, the venue and the stage it holds are in
`pipeline/execution/`."""
