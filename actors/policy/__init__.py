"""The policy role: turns a feature vector and the position state into a target position with a
confidence. Its core loads exported artifacts (numpy only: no RLlib or torch in the live path) and
hosts the baseline policies."""
