"""Request signing (API.md section 1.3): HMAC-SHA256 over `k=v` pairs joined with `&`, keys sorted
ASCII-ascending, values raw (not URL-encoded) in the signed string, lower-case hex signature.

We send the parameters in the same sorted order, with only the values URL-encoded, so the string
the venue reconstructs from the query equals the one we signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote


def payload(params: Mapping[str, str]) -> str:
    """The string to sign: sorted `k=v` pairs, raw values."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params))


def signature(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def encoded_query(params: Mapping[str, str]) -> str:
    """Sorted pairs with URL-encoded values (keys are never encoded)."""
    return "&".join(f"{key}={quote(params[key], safe='')}" for key in sorted(params))


def signed_query(params: Mapping[str, str], secret: str) -> str:
    """The query string to send: `encoded_query`, then `&signature=` over the raw values."""
    return f"{encoded_query(params)}&signature={signature(secret, payload(params))}"


def verify(received_pairs: list[tuple[str, str]], secret: str, received_signature: str) -> bool:
    """The simulator's rule (API.md 1.3): accept when the HMAC matches the pairs in the order they
    were received, or sorted by key. Values are already URL-decoded."""
    in_order = "&".join(f"{key}={value}" for key, value in received_pairs)
    candidates = (in_order, "&".join(f"{key}={value}" for key, value in sorted(received_pairs)))
    return any(hmac.compare_digest(signature(secret, candidate), received_signature) for candidate in candidates)
