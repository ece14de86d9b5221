"""The effective settings as an operator may see them: every secret replaced."""

from __future__ import annotations

from typing import Any

from config.dsn import REDACTED, redact_dsn
from config.settings import Settings


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """A JSON-ready dict of `settings` with secrets shown only as set or unset.

    A database URL keeps its host, port and database, with the password replaced.
    """
    data: dict[str, Any] = settings.model_dump(mode="json")
    for section, key in (("exchange", "api_key"), ("exchange", "secret_key"), ("control", "api_token")):
        if data[section][key] is not None:
            data[section][key] = REDACTED
    url = settings.storage.timescale_url
    data["storage"]["timescale_url"] = None if url is None else redact_dsn(url.get_secret_value())
    return data
