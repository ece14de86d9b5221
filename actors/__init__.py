"""One folder per pipeline role (feed, features, policy, risk, execution): a pure core plus a thin
Ray shell. Only the shells touch `ray`."""
