"""Process exit codes (sysexits.h), so systemd and scripts can tell failures apart.

The unit sets RestartPreventExitStatus=78: a configuration that cannot start is not restarted in a loop.
"""

from typing import Final

OK: Final = 0
FAILURE: Final = 1
USAGE: Final = 2
DATA_ERROR: Final = 65  # EX_DATAERR: an input file is invalid
UNAVAILABLE: Final = 69  # EX_UNAVAILABLE: the database cannot be reached or prepared
CONFIG: Final = 78  # EX_CONFIG: the configuration is invalid or unsafe
