"""The risk role: per-pair limits and trading state (the risk guard, `core.py`) and account-wide
guardrails (the account guard, `account.py`, `desk.py`), with what blocks a pair (`blocks.py`). Pure
cores: every denial comes back as a reason to record, never a silent drop. Their Ray shells are in
`actors/risk/actor.py`."""
