"""The Ray transport of the live path: one Ray shell per role (`<role>/actor.py`: feed, features,
policy, risk, execution), the typed Ray boundary (`transport.py`), the shared actor shell
(`shell.py`) and the ordered inbox (`inbox.py`). The roles' logic is elsewhere: the cores in
`pipeline/`, the feed's ingestion services in `market_data/`. Only the shells touch `ray`."""
