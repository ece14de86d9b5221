"""The `tradingd` executable: signals first (`daemon.signals`), then the command line.

Nothing is imported before the handlers are in place but this module, `daemon.signals` and the
standard library's `os` and `signal`: a SIGTERM in the first tenths of a second, while the command
line and the configuration are still loading, is recorded rather than killing the process.
"""

from __future__ import annotations

import sys


def main() -> int:
    from daemon.signals import STOP

    STOP.install()
    from daemon.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
