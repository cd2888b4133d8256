"""What the code cites lives in the repository: every `docs/<page>.md §N` names a page and section there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/([a-z0-9-]+\.md)((?:,? §[0-9]+(?:\.[0-9]+)?(?:-[0-9]+(?:\.[0-9]+)?)?)*)")
SECTION = re.compile(r"§([0-9]+(?:\.[0-9]+)?)(?:-([0-9]+(?:\.[0-9]+)?))?")
OUTSIDE = ("FORMATS.md", "MOTO.md")  # notes outside the repository that code once cited


def _sources() -> list[Path]:
    return sorted(p for folder in ("remediator", "tests", "bench") for p in (ROOT / folder).rglob("*.py"))


def _sections(page: Path) -> set[str]:
    """'3' for a `## 3.` heading, '2.5' for `### 2.5`, and '6.15' for item 15. of a `## 6.` list."""
    found: set[str] = set()
    current = ""
    for line in page.read_text().splitlines():
        if heading := re.match(r"^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? ", line):
            found.add(heading.group(1))
            current = heading.group(1).split(".")[0]
        elif (item := re.match(r"^([0-9]+)\. ", line)) and current:
            found.add(f"{current}.{item.group(1)}")
    return found


def _citations() -> list[tuple[str, str, str]]:
    cited = []
    for path in _sources():
        text = path.read_text()
        for match in CITATION.finditer(text):
            for section in SECTION.finditer(match.group(2)):
                for part in filter(None, section.groups()):
                    cited.append((str(path.relative_to(ROOT)), match.group(1), part))
    return cited


def test_the_code_cites_sections_that_exist() -> None:
    cited = _citations()
    assert len(cited) >= 20  # the sources cite the wire formats throughout
    missing = [(where, page, section) for where, page, section in cited
               if not (ROOT / "docs" / page).exists() or section not in _sections(ROOT / "docs" / page)]
    assert missing == []


@pytest.mark.parametrize("name", OUTSIDE)
def test_nothing_cites_notes_outside_the_repository(name: str) -> None:
    citing = [str(p.relative_to(ROOT)) for p in _sources() if p != Path(__file__) and name in p.read_text()]
    assert citing == []
