"""The parts of `tradingd secrets rotate` that need no venue: what counts as a key pair, the audit's view
of the request (a fingerprint, never a key), and the credentials file rewritten privately."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.credentials import read_credentials
from daemon.control_commands import audited_args
from daemon.secrets_rotation import fingerprint, shape_refusal, write_credentials_file
from exchange.bingx.rest import Credentials

KEY, SECRET = "unit-key-0001-abcdefgh", "unit-secret-0001-ijklmnopqr"


def test_a_key_pair_is_long_plain_ascii_and_two_different_texts() -> None:
    assert shape_refusal(KEY, SECRET) is None
    cases = {
        (None, SECRET): "api_key is required",
        (KEY, ""): "secret_key is required",
        ("short", SECRET): "api_key is 5 characters",
        (KEY, "with a space in it 0001"): "secret_key holds a character",
        (KEY, 'quote"in-the-secret-0001'): "secret_key holds a character",
        ("kéy-with-accent-000001", SECRET): "api_key holds a character",
        (KEY, KEY): "the same text",
    }
    for (api_key, secret_key), said in cases.items():
        refusal = shape_refusal(api_key, secret_key)
        assert refusal is not None, (api_key, secret_key)
        assert said in refusal, refusal
        assert secret_key is None or secret_key == "" or secret_key not in refusal


def test_the_audit_keeps_a_fingerprint_not_the_keys() -> None:
    kept = audited_args({"api_key": KEY, "secret_key": SECRET, "pair": "BTC-USDT"})
    assert kept == {"api_key": fingerprint(KEY), "secret_key": "[REDACTED]", "pair": "BTC-USDT"}
    assert fingerprint(KEY).startswith("sha256:")
    assert len(fingerprint(KEY)) == len("sha256:") + 12
    assert KEY not in str(kept)
    assert SECRET not in str(kept)
    assert audited_args({"api_key": 7})["api_key"] == "[REDACTED]"


def test_the_credentials_file_is_replaced_whole_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "bingx.toml"
    path.write_text('api_key = "old-key-000000000001"\nsecret_key = "old-secret-0000000001"\n')
    path.chmod(0o600)
    write_credentials_file(path, Credentials(KEY, SECRET))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == {"api_key": KEY, "secret_key": SECRET}
    assert [p.name for p in tmp_path.iterdir()] == ["bingx.toml"]  # no temporary left beside it


def test_a_rewrite_that_cannot_land_leaves_no_temporary_file(tmp_path: Path) -> None:
    taken = tmp_path / "bingx.toml"
    taken.mkdir()  # a directory where the file should be: the rename fails
    with pytest.raises(IsADirectoryError):
        write_credentials_file(taken, Credentials(KEY, SECRET))
    assert [p.name for p in tmp_path.iterdir()] == ["bingx.toml"]
    assert taken.is_dir()
