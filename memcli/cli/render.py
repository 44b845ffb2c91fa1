"""Rendering helpers: Rich on a terminal, plain text when piped, JSON for scripts.

Every table memcli prints is a ``FitTable``: it is laid out when it is printed, for the width of the console
it is printed on. Key columns never wrap; the one free-text column wraps and takes the width that is left;
when that is too narrow, the least important columns are dropped and their values folded into the free text,
so an 80-column terminal still shows what matters in every row.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from memcli.jsonable import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.table import Table
    from rich.text import Text

# Piped output (a log, grep, less) has no terminal to measure: tables are laid out for this width (or
# $COLUMNS) so key columns stay whole and free text wraps, instead of padding every row to the longest text.
PIPE_WIDTH = 120
# A free-text column narrower than this reads as a ribbon of fragments: drop less important columns first.
FREE_TEXT_MIN_WIDTH = 32

Justify = Literal["left", "center", "right"]


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr). Rich honours NO_COLOR and writes no escape codes when the stream is
    not a terminal; piped output gets ``$COLUMNS`` or ``PIPE_WIDTH`` columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or _columns_from_env() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def _columns_from_env() -> bool:
    value = os.environ.get("COLUMNS", "")
    return value.isdigit() and int(value) > 0


@dataclass(frozen=True)
class Col:
    """A column of a FitTable.

    ``drop``: 0 keeps the column at every width; when the table does not fit, columns with the highest
    ``drop`` go first (their values move into the free-text column, labelled with the header).
    ``text``: the free-text column (at most one): it wraps and takes the width the others leave.
    ``max_width``: a column of short texts that are sometimes long (a threshold) wraps beyond this width.
    """

    header: str
    justify: Justify = "left"
    drop: int = 0
    text: bool = False
    style: str | None = None
    max_width: int | None = None


class FitTable:
    """A table that fits the console it is printed on (see the module's docstring).

    Cells are plain strings (never parsed as Rich markup, so data cannot inject styles) or Rich ``Text``.
    """

    def __init__(self, *columns: Col, title: str | None = None) -> None:
        if sum(c.text for c in columns) > 1:
            raise ValueError("a FitTable has at most one free-text column")
        self.columns = columns
        self.title = title
        self._rows: list[list[Text]] = []
        self._section_ends: set[int] = set()
        self._no_fold: set[int] = set()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def add_row(self, *cells: str | Text | None, fold: bool = True) -> None:
        """Add a row; ``fold=False``: when columns are dropped, this row's values of them are left out
        instead of moving into its free text (for rows where they are noise, e.g. a check that passed)."""
        from rich.text import Text

        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        if not fold:
            self._no_fold.add(len(self._rows))
        self._rows.append([c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in cells])

    def add_section(self) -> None:
        """A blank line after the last row added (groups of rows)."""
        if self._rows:
            self._section_ends.add(len(self._rows) - 1)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        yield self.build(options.max_width)

    def kept_columns(self, width: int) -> list[int]:
        """Indices of the columns shown at ``width``: drop by ``drop`` (highest first) until it fits."""
        text = self._text_index()
        natural = [self._natural_width(i) for i in range(len(self.columns))]
        kept = list(range(len(self.columns)))
        droppable = sorted(
            (i for i, c in enumerate(self.columns) if c.drop > 0),
            key=lambda i: (-self.columns[i].drop, -i),
        )

        def needed() -> int:
            fixed = sum(natural[i] for i in kept if i != text)
            free = min(FREE_TEXT_MIN_WIDTH, natural[text]) if text is not None and text in kept else 0
            return fixed + free + _overhead(len(kept))

        for index in droppable:
            if needed() <= width:
                break
            kept.remove(index)
        return kept

    def build(self, width: int) -> Table:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        kept = self.kept_columns(width)
        dropped = [i for i in range(len(self.columns)) if i not in kept]
        text = self._text_index()
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
            title=Text(self.title) if self.title else None,
            title_justify="left",
            title_style="bold",
        )
        for i in kept:
            col = self.columns[i]
            table.add_column(
                Text(col.header),
                justify=col.justify,
                style=col.style,
                no_wrap=not (col.text or col.max_width),
                overflow="fold" if col.text or col.max_width else "ellipsis",
                max_width=col.max_width,
            )
        for index, row in enumerate(self._rows):
            cells = [row[i] for i in kept]
            if dropped and text is not None and text in kept and index not in self._no_fold:
                cells[kept.index(text)] = self._folded(row, text, dropped)
            table.add_row(*cells, end_section=index in self._section_ends)
        return table

    def _folded(self, row: list[Text], text: int, dropped: list[int]) -> Text:
        extra = [f"{self.columns[i].header.lower()} {row[i].plain}" for i in dropped if row[i].plain.strip()]
        cell = row[text].copy()
        if extra:
            cell.append(("\n" if cell.plain else "") + " · ".join(extra), style="dim")
        return cell

    def _text_index(self) -> int | None:
        return next((i for i, c in enumerate(self.columns) if c.text), None)

    def _natural_width(self, index: int) -> int:
        from rich.cells import cell_len

        cells = [self.columns[index].header, *(row[index].plain for row in self._rows)]
        widest = max((cell_len(line) for cell in cells for line in cell.splitlines()), default=0)
        limit = self.columns[index].max_width
        return widest if limit is None else min(widest, limit)


def _overhead(columns: int) -> int:
    # box.SIMPLE_HEAD without edges: one separator between columns, one space of padding on each inner side
    return max(0, 3 * (columns - 1))


def pairs_table(title: str, rows: dict[str, Any], header: tuple[str, str]) -> FitTable:
    """A two-column table of names and counts (integers with thousands separators)."""
    table = FitTable(Col(header[0], text=True), Col(header[1], justify="right"), title=title)
    for key, value in rows.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    return table


def render_plain(renderable: Any, width: int) -> str:
    """``renderable`` as plain text at ``width`` columns (no escape codes): for files and tests."""
    import io

    from rich.console import Console

    console = Console(width=width, color_system=None, file=io.StringIO(), highlight=False)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def wrap_text(text: str, *, stderr: bool = False, indent: str = "", hang: str = "  ") -> str:
    """``text`` wrapped between words (never inside a name) at the width :func:`make_console` gives the
    stream; continuation lines take ``hang`` after ``indent``. For plain lines that name many things."""
    import shutil
    import textwrap

    stream = sys.stderr if stderr else sys.stdout
    width = shutil.get_terminal_size().columns if stream.isatty() or _columns_from_env() else PIPE_WIDTH
    lines = textwrap.wrap(
        text, max(40, width), initial_indent=indent, subsequent_indent=indent + hang, break_on_hyphens=False
    )
    return "\n".join(lines)


def wrap_comment(text: str, width: int = 80, prefix: str = "# ") -> list[str]:
    """A comment line wrapped for a file meant to be read (crontab, unit), each line with ``prefix``."""
    import textwrap

    return [prefix + line for line in textwrap.wrap(text, width - len(prefix))] or [prefix.rstrip()]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def progress(console: Console, *, disable: bool = False) -> Any:
    """A Rich progress bar on a terminal; silent when piped or quiet (cron logs stay clean)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
        disable=disable or not sys.stderr.isatty(),
        transient=True,
    )
