"""The policy role's core: turns a feature vector and the position state into a target position with
a confidence, with a baseline or an exported artifact's numpy network (`policies/`; no RLlib or torch
in the live path). Its Ray shell is `actors/policy/actor.py`."""
