"""Database URLs: find and hide passwords, keep what an operator needs to see."""

from __future__ import annotations

import pytest

from config.dsn import dsn_password, redact_dsn


@pytest.mark.parametrize(
    ("dsn", "password", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "pw", "postgresql://u:[REDACTED]@h:5432/db"),
        ("postgresql://u:p%40ss:w@h/db?sslmode=require", "p%40ss:w", "postgresql://u:[REDACTED]@h/db?sslmode=require"),
        ("postgresql://h/db?user=u&password=pw", "pw", "postgresql://h/db?user=u&password=[REDACTED]"),
        ("postgresql://u@h/db", None, "postgresql://u@h/db"),
    ],
)
def test_password_is_found_and_redacted(dsn: str, password: str | None, shown: str) -> None:
    assert dsn_password(dsn) == password
    assert redact_dsn(dsn) == shown
