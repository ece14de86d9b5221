"""PostgreSQL connection strings: find and hide the password they may carry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

REDACTED = "[REDACTED]"


def dsn_password(dsn: str) -> str | None:
    """The password in a `postgresql://user:password@host/db` or `...?password=` DSN, if any."""
    parts = urlsplit(dsn)
    if parts.password:
        return parts.password
    query_password = parse_qs(parts.query).get("password")
    return query_password[0] if query_password else None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced, so an operator can still see host, port and database."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostinfo}"
    query = "&".join(
        f"{key}={REDACTED}" if key == "password" else f"{key}={value}"
        for key, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
