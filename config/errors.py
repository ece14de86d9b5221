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
