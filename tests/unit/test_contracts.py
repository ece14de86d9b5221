"""Contract rules as a dataset stores them and as a contract file states them: one JSON form, checked
field by field; the example contract file is the offline preset."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from daemon.cli_datasets import contract_file
from domain.instruments import Contract
from learning.datasets import preset_contract

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "contracts" / "example.toml"
BTC = Contract(
    "BTC-USDT", 1, 4, Decimal("0.0001"), Decimal("2"), Decimal("0.0002"), Decimal("0.0005"), 125, 100, 1, True
)


def test_the_json_form_reads_back_to_the_same_rules() -> None:
    document = BTC.to_json()
    assert document["tick_size"] == "0.1"
    assert document["step_size"] == "0.0001"
    assert Contract.from_json("BTC-USDT", document) == BTC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price_precision": -1}, "'price_precision' must be a whole number from 0 to 18"),
        ({"price_precision": 1.5}, "'price_precision' must be a whole number"),
        ({"max_long_leverage": 0}, "'max_long_leverage' must be a whole number from 1"),
        ({"min_notional": "-2"}, "'min_notional' must be a finite number at least 0"),
        ({"taker_fee_rate": "lots"}, "'taker_fee_rate' must be a number"),
        ({"maker_fee_rate": True}, "'maker_fee_rate' must be a number"),
        ({"tick_size": "0.01"}, "'tick_size' = 0.01 disagrees with its precision (0.1)"),
        ({"symbol": "ETH-USDT"}, "the contract is for ETH-USDT, not BTC-USDT"),
        ({"fee": "0.1"}, "unknown contract field 'fee'"),
    ],
)
def test_a_bad_field_is_refused_by_name(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Contract.from_json("BTC-USDT", BTC.to_json() | change)


def test_a_missing_field_is_named() -> None:
    document = BTC.to_json()
    del document["min_quantity"]
    with pytest.raises(ValueError, match="'min_quantity' is missing"):
        Contract.from_json("BTC-USDT", document)


def test_the_example_contract_file_states_the_offline_preset() -> None:
    assert contract_file(EXAMPLE, "ETH-USDT") == preset_contract("ETH-USDT")


def test_a_contract_file_error_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "c.toml"
    broken.write_text(EXAMPLE.read_text().replace("price_precision = 1", "price_precision = 'one'"))
    with pytest.raises(ValueError, match=rf"{broken}: contract field 'price_precision'"):
        contract_file(broken, "BTC-USDT")
    with pytest.raises(ValueError, match="cannot read"):
        contract_file(tmp_path / "absent.toml", "BTC-USDT")
    broken.write_text("price_precision = ")
    with pytest.raises(ValueError, match=rf"{broken}: "):
        contract_file(broken, "BTC-USDT")
