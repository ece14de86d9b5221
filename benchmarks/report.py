"""Write a benchmark's section of docs/performance.md (between its own markers)."""

from __future__ import annotations

from pathlib import Path

PERFORMANCE_DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def write_section(start: str, end: str, section: str, *, heading: str, doc: Path = PERFORMANCE_DOC) -> None:
    """Replace the text between `start` and `end` (markers included in `section`); a section not yet in
    the document is added under `heading`, before the installation figures."""
    text = doc.read_text()
    if start not in text:
        text = text.replace("## Installing and testing", f"## {heading}\n\n{start}\n{end}\n\n## Installing and testing")
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    doc.write_text(before + section + after)
