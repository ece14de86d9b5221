"""Scrub secrets from log events: by key name, by known secret value, and by shape.

Three nets, because each alone leaks: a key-name rule misses a secret inside a message or a
traceback; a value rule only knows registered secrets; shape rules (HMAC signatures in a query
string, passwords in a DSN) catch the values neither of the others knows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

REDACTED: Final = "[REDACTED]"
MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not scrubbed by value (they would mangle ordinary text); keys and shapes still apply."""

_SENSITIVE_KEY: Final = re.compile(
    r"(secret|token|passw(or)?d|api[_-]?key|apikey|signature|authorization|credential|private[_-]?key)", re.I
)
_SHAPES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(signature=)[0-9a-fA-F]{16,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)(x-bx-apikey[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1" + REDACTED),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(@)"), r"\1" + REDACTED + r"\2"),
    (re.compile(r"(?i)\b(password=)[^&\s]+"), r"\1" + REDACTED),
)


class Redactor:
    """Thread-safe registry of secret values plus the scrubbing rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add_secrets(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            known.update(value for value in secrets if len(value) >= MIN_SECRET_LENGTH)
            # Longest first, so a secret that contains another is replaced whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def redact_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {key: self._redact_item(key, value) for key, value in event.items()}

    def redact_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def _redact_item(self, key: str, value: Any) -> Any:
        if isinstance(key, str) and _SENSITIVE_KEY.search(key):
            return self._mask(value)
        return self._redact_value(value)

    def _mask(self, value: Any) -> Any:
        """A value under a secret-looking key: every string in it masked. None, booleans and numbers
        cannot carry a secret and stay readable (`token_required: true`, `api_key_set: false`)."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str | bytes):
            return REDACTED if value else value
        if isinstance(value, Mapping):
            return {str(k): self._mask(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._mask(item) for item in value]
        return REDACTED  # rendered through str() it could show the secret

    def _redact_value(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {str(k): self._redact_item(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._redact_value(item) for item in value]
        # Anything else would be rendered through repr() by the renderer; render and scrub it here.
        return self.redact_text(repr(value) if isinstance(value, BaseException) else str(value))
