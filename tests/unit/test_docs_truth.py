"""The documentation names every setting the loader knows, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from config import ENV_VARIABLES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_environment_variable_and_key_is_documented() -> None:
    text = DOCS.read_text()
    missing = [
        f"{name} ({'.'.join(path)})"
        for name, path in ENV_VARIABLES.items()
        if f"`{name}`" not in text or f"`{'.'.join(path)}`" not in text
    ]
    assert missing == []
