"""The composition root: CLI, `tradingd run`, the supervisor, the control socket, systemd."""

import os

# Ray reads this when it is imported: under `uv run` it would otherwise package the working directory
# and start every worker through uv. Our workers run from the installed environment.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
