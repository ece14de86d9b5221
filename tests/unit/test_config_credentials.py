"""BingX credentials from a file: private (0600) or refused, both keys or refused, never given twice, and
never quoted in an error, not even from a line the TOML parser cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings

KEY, SECRET = "file-key-marker", "file-secret-marker-0123456789"


def credentials(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "bingx.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_keys_come_from_a_private_file(tmp_path: Path) -> None:
    path = credentials(tmp_path, f'api_key = "{KEY}"\nsecret_key = "{SECRET}"\n')
    settings = load_settings(None, {"BINGX_CREDENTIALS_FILE": str(path)})
    assert settings.exchange.api_key is not None
    assert settings.exchange.secret_key is not None
    assert (settings.exchange.api_key.get_secret_value(), settings.exchange.secret_key.get_secret_value()) == (
        KEY,
        SECRET,
    )
    assert SECRET not in repr(settings), "a secret, as any other"


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (f'api_key = "{KEY}"\nsecret_key = "{SECRET}"\n', 0o640, "has mode 0640"),
        (f'api_key = "{KEY}"\nsecret_key = "{SECRET}"\n', 0o604, "has mode 0604"),
        (f'api_key = "{KEY}"\n', 0o600, "has no secret_key"),
        (f'api_key = ""\nsecret_key = "{SECRET}"\n', 0o600, "has no api_key"),
        (f'api_key = "{KEY}"\nsecret_key = "{SECRET}"\npassphrase = "x"\n', 0o600, "holds passphrase"),
        (f'api_key = "{KEY}\nsecret_key = "{SECRET}"\n', 0o600, "is not a TOML file"),
        (f"api_key = {SECRET}\n", 0o600, "is not a TOML file"),
    ],
)
def test_a_file_that_is_not_private_or_not_both_keys_is_refused(
    tmp_path: Path, text: str, mode: int, says: str
) -> None:
    path = credentials(tmp_path, text, mode)
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"BINGX_CREDENTIALS_FILE": str(path)})
    assert says in str(refused.value)
    assert SECRET not in str(refused.value)
    assert KEY not in str(refused.value)


def test_a_missing_file_and_keys_given_twice_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, {"BINGX_CREDENTIALS_FILE": str(tmp_path / "absent.toml")})
    path = credentials(tmp_path, f'api_key = "{KEY}"\nsecret_key = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="give the keys in one place"):
        load_settings(None, {"BINGX_CREDENTIALS_FILE": str(path), "BINGX_API_KEY": "another"})
