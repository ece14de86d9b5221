"""The results page keeps every case's block: measuring one case again replaces only its own."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import write_section
from benchmarks.results import END, EVALUATION_DOC, EXAMPLE, START, case_blocks, current_section, merged_section
from learning.agent_config import load_agent_config

AGENT = load_agent_config(EXAMPLE)


def block(key: str, figure: str) -> str:
    return f"<!-- results:case {key} -->\n### {key}\n\nOut of sample: {figure}.\n"


def test_a_new_case_replaces_its_block_and_keeps_the_others_in_the_default_order() -> None:
    previous = merged_section(
        "", {"btc-1h:1h": block("btc-1h:1h", "-176"), "btc-1m:5m": block("btc-1m:5m", "-318")}, AGENT
    )
    section = merged_section(
        previous, {"btc-1m:5m": block("btc-1m:5m", "+12"), "eth-1m:15m": block("eth-1m:15m", "-3")}, AGENT
    )
    blocks = case_blocks(section)
    assert list(blocks) == ["btc-1m:5m", "eth-1m:15m", "btc-1h:1h"]
    assert "+12" in blocks["btc-1m:5m"]
    assert "-318" not in section
    assert "-176" in blocks["btc-1h:1h"]
    assert section.startswith(START)
    assert section.endswith(END)


def test_writing_a_case_into_a_page_leaves_the_rest_of_the_page(tmp_path: Path) -> None:
    doc = tmp_path / "evaluation.md"
    doc.write_text("# Evaluation\n\nabove\n\n## Installing and testing\n\nbelow\n")
    for key, figure in (("btc-1h:1h", "-176"), ("eth-1h:1h", "+5"), ("btc-1h:1h", "-40")):
        section = merged_section(current_section(doc), {key: block(key, figure)}, AGENT)
        write_section(START, END, section, heading="Results", doc=doc)
    text = doc.read_text()
    assert text.startswith("# Evaluation\n\nabove\n\n## Results\n\n")
    assert text.endswith("## Installing and testing\n\nbelow\n")
    assert text.count(START) == 1
    assert list(case_blocks(current_section(doc))) == ["btc-1h:1h", "eth-1h:1h"]
    assert "-176" not in text
    assert "-40" in text


def test_the_shipped_page_reads_back_unchanged() -> None:
    section = current_section(EVALUATION_DOC)
    assert case_blocks(section), "the results page has no case blocks"
    assert merged_section(section, {}, AGENT) == section


def test_a_fold_that_stood_aside_is_shown_so_with_its_holdout() -> None:
    from benchmarks.results import BUY_AND_HOLD, HOLDOUT, IN_SAMPLE, STOOD_ASIDE, Case, case_block
    from domain.market import parse_interval

    gated = AGENT.model_copy(
        update={"promotion_gates": AGENT.promotion_gates.model_copy(update={"walk_forward_holdout": True})}
    )
    row = {
        "fold": 1, "days": 3.0, "train_rows": 900, "agent": 0.0, "trades": 0, "turnover": 0.0, "drawdown": 0.0,
        "fees": 0.0, BUY_AND_HOLD: 25.0, "buy_and_hold_drawdown": 0.02, "momentum": -5.0, "ema_cross": 7.0,
        IN_SAMPLE: 300.0, "in_sample_return": 0.03, HOLDOUT: -42.0, STOOD_ASIDE: True,
    }  # fmt: skip
    traded = row | {"fold": 2, "agent": 12.0, "trades": 3, HOLDOUT: 8.0, STOOD_ASIDE: False}
    case = Case("btc-1m", "BINANCE_BTCUSDT_1m.csv", "BTC-USDT", parse_interval("15m"))
    result = {"case": case, "folds": [row, traded], "rows": 1000, "from_ms": 0, "to_ms": 60_000, "seconds": 60.0}
    text = case_block(result, gated, 1, 2)
    assert "| 1 | 3.0 | +0 (aside) | 0 |" in text
    assert text.count(" its holdout |") == 1
    assert "| +300 (+3.0%) | -42 |" in text
    assert "| +300 (+3.0%) | +8 |" in text
    assert "it stood aside in 1 of 2 folds" in text
    assert "(aside)" not in case_block(result | {"folds": [traded]}, AGENT, 1, 1)
