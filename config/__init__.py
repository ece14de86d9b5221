"""Typed, frozen settings from a TOML file plus environment variables, validated once at start-up.

Example files live beside this package's modules (`config/*.toml`).
"""

from config.errors import ConfigError, UnsafeConfigError
from config.loader import ENV_VARIABLES, load_settings
from config.redaction import redacted_settings
from config.settings import Settings

__all__ = ["ENV_VARIABLES", "ConfigError", "Settings", "UnsafeConfigError", "load_settings", "redacted_settings"]
