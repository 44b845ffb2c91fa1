"""How ``memcli search`` shows its results: a table that fits the terminal, plain lines when piped.

On a terminal the table keeps what a reader needs at any width: rank, similarity, type and the text,
wrapped (and cut after a few lines: ``--json`` has every text in full); the session and the date join when
there is room for them. Piped output is one line per result, fields apart by two spaces, the whole text
last: no escape codes, and no cell padded to the width of the longest text.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from memcli.search import SearchResult, SectionSearchResult

MAX_TEXT_LINES = 4  # lines of a wrapped text in the terminal table
SESSION_FROM = 96  # terminal columns from which the session is shown
CREATED_FROM = 120  # ... and the creation date
TYPE_LABELS = {"conversation": "conversation", "business_info": "business", "user_preference": "preference"}


def flatten(text: str) -> str:
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _floor_note(result: SearchResult) -> str | None:
    """Says what the floor held back, so "nothing found" is never mistaken for "no memory"."""
    if not result.hidden or result.best_hidden is None:
        return None
    lower = max(-1.0, math.floor(result.best_hidden * 100) / 100)
    return (
        f"{result.hidden} more below the similarity floor {result.min_similarity:.2f} "
        f"(best {result.best_hidden:.3f}); --min-similarity {lower:.2f} shows them"
    )


def render_search(
    console: Console, result: SearchResult, *, quiet: bool = False, lexical: bool = False
) -> None:
    if not result.hits:
        _render_nothing(console, result)
        return
    if console.is_terminal:
        _search_table(console, result)
    else:
        _search_lines(console, result)
    if quiet:
        return
    note = _floor_note(result)
    source = f"like {result.like_id}" if result.like_id else result.embedder
    kind = " (lexical: matches words, not meaning)" if lexical else ""
    timing = result.timing
    summary = (
        f"{len(result.hits)} result(s) · {result.mode} · {source}{kind} · "
        + (f"floor {result.min_similarity:.2f} ({result.floor_source}) · " if result.mode != "hybrid" else "")
        + f"query {timing.get('query_ms', 0):.1f} ms · total {timing.get('total_ms', 0):.1f} ms"
    )
    if console.is_terminal:
        console.print(summary, style="dim", markup=False, highlight=False)
        if note:
            console.print(note, style="yellow", markup=False, highlight=False)
    else:
        console.print(summary, markup=False, highlight=False, soft_wrap=True)
        if note:
            console.print(note, markup=False, highlight=False, soft_wrap=True)


def _render_nothing(console: Console, result: SearchResult) -> None:
    if result.empty_database:
        console.print(
            "No memories yet. Add one with: memcli remember 'text' --session SESSION "
            "(or load demo data with: memcli seed --demo)",
            markup=False,
        )
        return
    floor = f" with similarity >= {result.min_similarity:.2f}" if result.mode != "hybrid" else ""
    note = _floor_note(result)
    if note:
        console.print(f"No memories matched{floor}: {note}.", markup=False)
    else:
        console.print(
            f"No memories matched{floor}. Try fewer filters or a lower --min-similarity.", markup=False
        )
    if result.unembedded:
        console.print(
            "Some memories have no embedding yet and cannot be found: run memcli embed", markup=False
        )


def _search_table(console: Console, result: SearchResult) -> None:
    from rich.table import Table
    from rich.text import Text

    width = console.width
    hybrid = result.mode == "hybrid"
    show_session = width >= SESSION_FROM
    show_created = width >= CREATED_FROM
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("sim", justify="right", no_wrap=True)
    if hybrid:
        table.add_column("fused", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    if show_session:
        table.add_column("session", no_wrap=True, overflow="ellipsis", max_width=24)
    if show_created:
        table.add_column("created", no_wrap=True)
    table.add_column("text", overflow="fold", ratio=1)
    # Rough room the text gets, to cut it after MAX_TEXT_LINES lines (Rich wraps it; it cannot stop it).
    fixed = 4 + 6 + (7 if hybrid else 0) + 13 + (26 if show_session else 0) + (18 if show_created else 0)
    limit = max(20, width - fixed) * MAX_TEXT_LINES
    for hit in result.hits:
        cells: list[Any] = [str(hit.rank), f"{hit.similarity:.3f}"]
        if hybrid:
            cells.append(f"{hit.score:.4f}" if hit.score is not None else "-")
        cells.append(TYPE_LABELS.get(hit.content_type or "", hit.content_type or "-"))
        if show_session:
            cells.append(Text(hit.session_id))
        if show_created:
            cells.append(when(hit.created_at))
        cells.append(Text(clip(flatten(hit.content_text), limit)))
        table.add_row(*cells)
    console.print(table)


def _search_lines(console: Console, result: SearchResult) -> None:
    hybrid = result.mode == "hybrid"
    header = ["#", "sim", *(["fused"] if hybrid else []), "type", "session", "created", "text"]
    lines = ["  ".join(header)]
    for hit in result.hits:
        fields = [str(hit.rank), f"{hit.similarity:.3f}"]
        if hybrid:
            fields.append(f"{hit.score:.4f}" if hit.score is not None else "-")
        fields += [hit.content_type or "-", hit.session_id, when(hit.created_at), flatten(hit.content_text)]
        lines.append("  ".join(fields))
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


# -- --sections -----------------------------------------------------------------------------------------


def section_text(content: Any) -> str:
    """A section's content as a person reads it: the text, or the values of a JSON document in order."""
    if content is None:
        return ""
    if isinstance(content, str):
        try:
            parsed = json.loads(content)
        except ValueError:
            return flatten(content)
        if isinstance(parsed, str):
            return flatten(parsed)
        content = parsed
    parts: list[str] = []

    def walk(value: Any, label: str | None = None) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, str(key))
        elif isinstance(value, list):
            for inner in value:
                walk(inner, None)
        elif value is not None and value != "":
            text = flatten(str(value))
            # Labels that only repeat the structure ("text", "content") add nothing to read.
            parts.append(f"{label}: {text}" if label and label not in ("text", "content", "value") else text)

    walk(content)
    return "; ".join(parts)


def render_sections(console: Console, result: SectionSearchResult, *, quiet: bool = False) -> None:
    if not result.hits:
        console.print(f"No active business sections match {result.query!r}.", markup=False)
        return
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        width = console.width
        show_business = width >= SESSION_FROM
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("#", justify="right", no_wrap=True)
        if show_business:
            table.add_column("business", no_wrap=True, overflow="ellipsis", max_width=22)
        table.add_column("type", no_wrap=True)
        table.add_column("section", overflow="fold", max_width=20)
        table.add_column("content", overflow="fold", ratio=1)
        limit = max(20, width - 40) * MAX_TEXT_LINES
        for hit in result.hits:
            cells: list[Any] = [str(hit.rank)]
            if show_business:
                cells.append(Text(hit.business_name or str(hit.business_id or "-")))
            cells += [
                hit.section_type,
                Text(hit.section_name),
                Text(clip(section_text(hit.section_content), limit)),
            ]
            table.add_row(*cells)
        console.print(table)
    else:
        lines = ["  ".join(["#", "business", "type", "section", "content"])]
        for hit in result.hits:
            business = hit.business_name or str(hit.business_id or "-")
            lines.append(
                "  ".join(
                    [
                        str(hit.rank),
                        business,
                        hit.section_type,
                        hit.section_name,
                        section_text(hit.section_content),
                    ]
                )
            )
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    if quiet:
        return
    how = (
        "no full-text match; these contain the query as a substring"
        if result.hits[0].matched_by == "substring"
        else "full-text match"
    )
    summary = f"{len(result.hits)} section(s) · {how}"
    console.print(summary, style="dim" if console.is_terminal else None, markup=False, highlight=False)
