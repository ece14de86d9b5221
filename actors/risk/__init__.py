"""The risk role: per-pair limits and trading state (the risk guard) and account-wide guardrails (the
account guard). Pure cores: every denial comes back as a reason to record, never a silent drop."""
