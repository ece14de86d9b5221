"""`tradingd secrets rotate`: a new pair of BingX API keys swapped into the running daemon.

The new pair is checked before anything uses it: it must look like a key pair (so the log redactor can
hold it without scrubbing common words), and a signed read of the account's balance with it must
succeed. While the keys in use still answer, both must name the same account (`userId`): keys of
another account would make our positions look gone. Only then does the daemon sign with it: the
settings, the live pairs' REST clients and user streams, and every actor started later. Where the keys
came from a credentials file (`exchange.credentials_file`), that file is rewritten (0600, atomically), so
a restart keeps the new pair; keys from the environment must be changed there by the operator.

Neither key is ever logged, stored or answered: the audit and the answer name a key by its fingerprint
(`sha256:` and 12 hex digits of its SHA-256)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config.settings import ExchangeSettings
from domain.errors import TemporaryVenueError, VenueError
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading

MIN_KEY_LENGTH = 16
"""BingX's keys are 64 characters. A short string in the redactor would scrub ordinary words from logs."""
SECRET_ARGS = frozenset({"api_key", "secret_key"})
"""The control request's fields that hold the new pair: never audited as given."""


class RotationRefused(Exception):
    """The new pair cannot be used; the message says why, without either key."""


@dataclass(frozen=True)
class CheckedKeys:
    credentials: Credentials
    user_id: str | None
    """The account the new keys read, when the venue says (`userId`)."""
    old_keys: str
    """What the keys in use said: `same account`, `not configured`, or why they could not be compared."""


def fingerprint(api_key: str) -> str:
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def shape_refusal(api_key: object, secret_key: object) -> str | None:
    """Why this is not a key pair (None: it is one), without repeating either value."""
    for name, value in (("api_key", api_key), ("secret_key", secret_key)):
        if not isinstance(value, str) or not value:
            return f"{name} is required (non-empty text)"
        if len(value) < MIN_KEY_LENGTH:
            return f"{name} is {len(value)} characters: a BingX key is at least {MIN_KEY_LENGTH}"
        if not value.isascii() or not value.isprintable() or any(c in value for c in " \"'\\"):
            return f"{name} holds a character no BingX key has (spaces, quotes, backslashes, non-ASCII)"
    if api_key == secret_key:
        return "api_key and secret_key are the same text"
    return None


async def check_new_keys(exchange: ExchangeSettings, new: Credentials) -> CheckedKeys:
    """A signed read with the new pair (and, to compare, with the pair in use); `RotationRefused` when the
    venue refuses it, cannot be reached, or it belongs to another account."""
    try:
        new_user = await _account_user(exchange, new)
    except TemporaryVenueError as error:  # not reached, rate-limited, no answer: says nothing of the keys
        raise RotationRefused(
            f"the venue did not answer the check of the new keys ({type(error).__name__}: {error}); nothing changed, "
            "ask again"
        ) from None
    except VenueError as error:
        code = "" if error.code is None else f" {error.code}"
        raise RotationRefused(
            f"the venue refused a signed read with the new keys ({type(error).__name__}{code}: {error})"
        ) from None
    except OSError as error:
        raise RotationRefused(
            f"the venue could not be reached to check the new keys: {error}; nothing changed"
        ) from None
    if exchange.api_key is None or exchange.secret_key is None:
        return CheckedKeys(new, new_user, "not configured")
    old = Credentials(exchange.api_key.get_secret_value(), exchange.secret_key.get_secret_value())
    if old == new:
        raise RotationRefused("these are the keys in use already")
    try:
        old_user = await _account_user(exchange, old)
    except (VenueError, OSError) as error:  # revoked already, say: the new pair stands on its own read
        return CheckedKeys(new, new_user, f"not compared: the keys in use did not answer ({type(error).__name__})")
    if old_user is not None and new_user is not None and old_user != new_user:
        raise RotationRefused(
            f"the new keys belong to another account (user {new_user}, not {old_user}): tradingd would lose "
            "sight of its positions"
        )
    return CheckedKeys(
        new, new_user, "same account" if old_user is not None and new_user is not None else "not compared"
    )


async def _account_user(exchange: ExchangeSettings, credentials: Credentials) -> str | None:
    async with BingXRest(exchange.rest_url, credentials, recv_window_ms=exchange.recv_window_ms) as rest:
        balances = await BingXTrading(rest).balance()
    return next((b.user_id for b in balances if b.user_id is not None), None)


def write_credentials_file(path: Path, credentials: Credentials) -> None:
    """The credentials file rewritten with the new pair: a private file beside it (0600), synced, then
    renamed over it, so a crash leaves the old file or the new one, never half of either."""
    text = f'api_key = "{credentials.api_key}"\nsecret_key = "{credentials.secret_key}"\n'
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
