"""Configuration errors. The process exits with EX_CONFIG (78) on these, so systemd does not
restart-loop on a configuration that can never start (the unit sets RestartPreventExitStatus=78)."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid; the message names the key or variable at fault."""


class UnsafeConfigError(ConfigError):
    """The configuration is valid but unsafe to start with (production guard, live-mode secrets)."""

    def __init__(self, faults: list[str]) -> None:
        self.faults = faults
        super().__init__("refusing to start:\n" + "\n".join(f"  - {fault}" for fault in faults))


class UnavailableSettingError(ConfigError):
    """A setting that exists in the tree but has no behaviour yet was given a value other than its default.
    One line per such setting, naming it (and the environment variable when that is where it came from)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))
