"""BingX API credentials from a file (`exchange.credentials_file`, `BINGX_CREDENTIALS_FILE`): a TOML file
with `api_key` and `secret_key`, readable by its owner alone (mode 0600 or stricter), read once at start-up
like the rest of the configuration. Only its path is ever shown; a key given both there and otherwise (the
environment, the config file) is refused rather than one silently winning."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from config.errors import ConfigError

KEYS = ("api_key", "secret_key")


def merge_credentials_file(data: MutableMapping[str, Any]) -> None:
    """Put the file's keys into `data["exchange"]`, or raise `ConfigError` naming what is wrong."""
    exchange = data.get("exchange")
    if not isinstance(exchange, MutableMapping) or exchange.get("credentials_file") in (None, ""):
        return
    raw = exchange["credentials_file"]
    raw = str(raw) if isinstance(raw, Path) else raw
    if not isinstance(raw, str) or "\x00" in raw:
        return  # the settings' own validation names it
    try:
        path = Path(raw).expanduser()
    except RuntimeError:
        return  # an unknown home (`~nobody-here/...`): the settings' own validation names it
    given = [key for key in KEYS if exchange.get(key) not in (None, "")]
    if given:
        raise ConfigError(
            f"exchange.credentials_file ({path}) and exchange.{given[0]} are both set: give the keys in one place"
        )
    exchange.update(read_credentials(path))


def read_credentials(path: Path) -> dict[str, str]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if not path.is_file():
            raise ConfigError(f"exchange.credentials_file: {path} is not a file")
        if mode & 0o077:
            raise ConfigError(
                f"exchange.credentials_file: {path} has mode {mode:04o}; it holds secrets, make it private (chmod 600)"
            )
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"exchange.credentials_file: {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        # Never the parser's message: it may quote the line, a secret.
        raise ConfigError(f"exchange.credentials_file: {path} is not a TOML file of api_key and secret_key") from None
    except OSError as error:
        raise ConfigError(f"exchange.credentials_file: {path} cannot be read: {error.strerror}") from None
    missing = [key for key in KEYS if not isinstance(document.get(key), str) or not document[key].strip()]
    if missing:
        raise ConfigError(f"exchange.credentials_file: {path} has no {' and no '.join(missing)} (non-empty text)")
    unknown = sorted(set(document) - set(KEYS))
    if unknown:
        raise ConfigError(f"exchange.credentials_file: {path} holds {', '.join(unknown)}: only api_key and secret_key")
    return {key: document[key].strip() for key in KEYS}
