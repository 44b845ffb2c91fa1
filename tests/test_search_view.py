"""What ``memcli search`` prints: readable at 80 and 120 columns, plain when piped."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime

import pytest
from rich.console import Console

from memcli.cli.search_view import render_search, render_sections, section_text
from memcli.search import SearchHit, SearchResult, SectionHit, SectionSearchResult

LONG = (
    "Guest asked about vegetarian options at Butcher's Block; recommended the Roasted beetroot salad and the "
    "Wild mushroom Wellington, meat-free. " * 3
)
ESCAPE = re.compile(r"\x1b\[")


def result(hits: int = 3, hidden: int = 0, mode: str = "indexed") -> SearchResult:
    out = SearchResult(
        query="vegetarian options",
        mode=mode,
        exact=False,
        embedder="sentence-transformers/all-MiniLM-L6-v2",
        like_id=None,
        top_k=10,
        min_similarity=0.35,
        filters={},
        floor_source="model default",
        hidden=hidden,
        best_hidden=0.331 if hidden else None,
        timing={"query_ms": 2.5, "total_ms": 40.0},
    )
    kinds = ["user_preference", "business_info", "conversation"]
    for rank in range(1, hits + 1):
        out.hits.append(
            SearchHit(
                rank=rank,
                id=uuid.uuid4(),
                similarity=0.7 - rank / 100,
                content_type=kinds[rank % 3],
                session_id=f"demo-42-0000{rank:02d}",
                user_id=None,
                created_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
                content_text=f"[{rank}] {LONG}",
                score=0.03 if mode == "hybrid" else None,
            )
        )
    return out


def terminal(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, force_terminal=True, color_system=None, highlight=False), buffer


def lines_of(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_table_keeps_rank_similarity_type_and_text(width: int) -> None:
    console, buffer = terminal(width)
    render_search(console, result(hits=3, hidden=2))
    lines = lines_of(buffer)
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    header = lines[0].split()
    assert header[:3] == ["#", "sim", "type"] and header[-1] == "text"
    assert ("session" in header) == (width >= 96)
    body = buffer.getvalue()
    for rank, sim in ((1, "0.690"), (2, "0.680"), (3, "0.670")):
        assert re.search(rf"^\s*{rank}\s+{sim}\s+\w+", body, re.MULTILINE)
    assert "preference" in body and "business" in body
    # The text wraps over a few lines instead of being cut to one.
    assert "Wild mushroom" in body and "[3]" in body
    assert (
        "2 more below the similarity floor 0.35 (best 0.331); --min-similarity 0.33 shows them"
        in " ".join(line.strip() for line in lines)
    )
    if width >= 120:
        assert "demo-42-000001" in body and "2026-11-01" in body


def test_hybrid_table_at_80_columns_keeps_the_fused_score() -> None:
    console, buffer = terminal(80)
    render_search(console, result(hits=2, mode="hybrid"))
    lines = lines_of(buffer)
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].split()[:4] == ["#", "sim", "fused", "type"]


def test_piped_output_is_plain_lines_without_padding() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=1000, force_terminal=False, highlight=False)
    render_search(console, result(hits=3))
    text = buffer.getvalue()
    assert not ESCAPE.search(text)
    lines = text.splitlines()
    assert lines[0] == "#  sim  type  session  created  text"
    assert lines[1].startswith("1  0.690  business_info  demo-42-000001  ")
    assert all(line == line.rstrip() for line in lines)  # no padding to the longest text
    assert LONG.strip() in lines[1]  # the whole text, on one line, for grep
    assert lines[-1].startswith("3 result(s) · indexed")


def test_nothing_shown_says_what_the_floor_held_back() -> None:
    console, buffer = terminal(80)
    render_search(console, result(hits=0, hidden=4))
    text = " ".join(buffer.getvalue().split())
    assert "No memories matched with similarity >= 0.35" in text
    assert "4 more below the similarity floor 0.35 (best 0.331)" in text


def sections() -> SectionSearchResult:
    out = SectionSearchResult(query="vegetarian", business_id=None, section_type=None)
    content = {
        "text": "Vegetarian options are marked on the menu.",
        "dishes": ["Tofu scramble", "Buddha bowl"],
    }
    for rank in (1, 2):
        out.hits.append(
            SectionHit(
                rank=rank,
                id=uuid.uuid4(),
                business_id=uuid.uuid4(),
                business_name="Green Sprout Cafe",
                section_type="menu",
                section_name="Menu",
                section_content=content,
                score=0.1,
                matched_by="fulltext",
            )
        )
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_sections_show_readable_text_and_a_count(width: int) -> None:
    console, buffer = terminal(width)
    render_sections(console, sections())
    lines = lines_of(buffer)
    assert all(len(line) <= width for line in lines)
    body = buffer.getvalue()
    assert "{" not in body and '"text"' not in body  # no raw JSON
    assert "Vegetarian options are marked on the menu." in " ".join(body.split())
    assert "2 section(s)" in body


def test_section_text_reads_json_documents() -> None:
    assert section_text('{"text": "Open daily", "hours": {"mon": "9-17"}}') == "Open daily; mon: 9-17"
    assert section_text("plain words") == "plain words"
    assert section_text(None) == ""
