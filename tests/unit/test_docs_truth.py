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


def test_the_readme_names_the_pairs_tradingd_run_trades_by_default() -> None:
    import re

    from config import load_settings

    readme = DOCS.parents[1] / "README.md"
    line = next(line for line in readme.read_text().splitlines() if line.startswith("uv run tradingd run "))
    assert set(re.findall(r"\b[A-Z0-9]+-USDT\b", line)) == set(load_settings(None, {}).market_data.pairs)
