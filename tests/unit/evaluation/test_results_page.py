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
