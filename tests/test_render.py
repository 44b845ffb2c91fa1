"""Tables fit the terminal: key columns whole at 80 and 120 columns, free text wrapped, nothing escaped when
piped."""

from __future__ import annotations

import re

import psycopg
import pytest
from rich.text import Text

from memcli.cli.render import PIPE_WIDTH, Col, FitTable, pairs_table, render_plain
from memcli.health import resolve_names

WIDTHS = (80, 120)
ESCAPE = "\x1b"


def lines_of(text: str) -> list[str]:
    return text.rstrip("\n").splitlines()


def assert_fits(text: str, width: int) -> None:
    too_wide = [line for line in lines_of(text) if len(line) > width]
    assert not too_wide, f"{len(too_wide)} line(s) wider than {width}: {too_wide[:2]}"
    assert ESCAPE not in text


def health_like_table() -> FitTable:
    table = FitTable(
        Col("Check"),
        Col("Status"),
        Col("Value", justify="right", drop=1),
        Col("Threshold", drop=2),
        Col("Finding", text=True),
    )
    table.add_row(
        "consolidation_backlog",
        "WARN",
        "12,345",
        "< 1,000 sessions",
        "short-term memories older than 5 days wait for consolidation in 120 sessions " * 2,
    )
    table.add_row("connection", "OK", "0.04 ms", "< 100 ms", "round trip 0.04 ms", fold=False)
    return table


@pytest.mark.parametrize("width", WIDTHS)
def test_key_columns_whole_and_free_text_wrapped(width: int) -> None:
    out = render_plain(health_like_table(), width)
    assert_fits(out, width)
    for key in ("consolidation_backlog", "connection", "WARN", "OK", "Check", "Status", "Finding"):
        assert key in out
    # the free text is all there, wrapped over several lines
    words = " ".join(out.split())
    assert "wait for consolidation in 120 sessions" in words
    assert sum("short-term" in line for line in lines_of(out)) == 2


def test_narrow_terminal_drops_the_least_important_columns_into_the_free_text() -> None:
    table = health_like_table()
    assert table.kept_columns(200) == [0, 1, 2, 3, 4]
    narrow = table.kept_columns(80)
    assert 3 not in narrow and {0, 1, 4} <= set(narrow)  # the threshold goes first
    assert table.kept_columns(60) == [0, 1, 4]  # then the value; check, status and finding stay
    out = render_plain(table, 60)
    assert_fits(out, 60)
    flat = " ".join(out.split())
    assert "threshold < 1,000 sessions" in flat and "value 12,345" in flat  # folded, labelled
    assert "< 100 ms" not in flat  # fold=False: a passed check's threshold is left out


def test_wide_terminal_shows_every_column_and_no_folding() -> None:
    out = render_plain(health_like_table(), 200)
    header = lines_of(out)[0]
    assert re.search(r"Check\s+Status\s+Value\s+Threshold\s+Finding", header)
    assert "threshold <" not in out


def test_cells_are_text_not_markup() -> None:
    table = FitTable(Col("[health.thresholds] key"), Col("text", text=True), title="[bold]t[/bold]")
    table.add_row("[red]x[/red]", Text("[b]y[/b]"))
    out = render_plain(table, 80)
    assert "[health.thresholds] key" in out and "[red]x[/red]" in out and "[b]y[/b]" in out
    assert "[bold]t[/bold]" in out


def test_pairs_table_thousands_and_text() -> None:
    out = render_plain(
        pairs_table("per table", {"conversation_memory": 12345, "x": "n/a"}, ("table", "rows")), 80
    )
    assert "per table" in out and "conversation_memory" in out and "12,345" in out and "n/a" in out


# ------------------------------------------------------------------------------------------ the commands


@pytest.mark.parametrize("width", WIDTHS)
def test_health_at_terminal_widths(cli, migrated_db: str, width: int) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:  # one WARN row with a hint
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value, "
            "expires_at) VALUES ('s', 'short_term', 'k', '{}', now() - interval '5 days')"
        )
    result = cli("health", dsn=migrated_db, env={"COLUMNS": str(width)})
    out = result.stdout
    assert_fits(out, width)
    for name in resolve_names(None, deep=False):
        assert re.search(rf"^{name}\s+(OK|WARN|FAIL|SKIP)\b", out, re.M), name
    assert re.search(r"^expired_backlog\s+WARN\s", out, re.M)
    assert "→" in out  # the hint of the WARN row
    # about two lines a check at 80 columns, not the hundreds a squeezed finding column gave
    assert len(lines_of(out)) < 3 * len(resolve_names(None, deep=False))
    if width >= 120:
        assert re.search(r"Check\s+Status\s+Value\s+Threshold\s+Finding", out)


def test_health_piped_has_no_escape_codes_and_no_wide_padding(cli, migrated_db: str) -> None:
    out = cli("health", dsn=migrated_db, env={"COLUMNS": None, "NO_COLOR": None}).stdout
    assert_fits(out, PIPE_WIDTH)
    assert "connection" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_health_list_at_terminal_widths(cli, width: int) -> None:
    out = cli("health", "--list", env={"COLUMNS": str(width)}).stdout
    assert_fits(out, width)
    assert "[health.thresholds] key" in out
    for name in resolve_names(None, deep=True):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert re.search(r"^latency_warn_ms\s+\d", out, re.M)


@pytest.mark.parametrize("width", WIDTHS)
def test_job_tables_at_terminal_widths(cli, migrated_db: str, width: int) -> None:
    env = {"COLUMNS": str(width)}
    out = cli("cleanup", "--expired", "--dry-run", dsn=migrated_db, env=env).stdout
    assert_fits(out, width)
    assert re.search(r"^conversation_memory\s+0$", out, re.M) and re.search(r"^short_term\s+0$", out, re.M)
    out = cli("maintain", "daily", dsn=migrated_db, env=env).stdout
    assert_fits(out, width)
    assert re.search(r"^cleanup\s+succeeded\s+0\s+\d+(ms|\.\ds)", out, re.M)
    assert re.search(r"^stale_relevance\s+succeeded\s", out, re.M)
    out = cli("consolidate", "--dry-run", "--decay", dsn=migrated_db, env=env).stdout
    assert_fits(out, width)
    assert re.search(r"^sessions would be consolidated\s+0$", out, re.M)


@pytest.mark.parametrize("width", WIDTHS)
def test_seed_and_migrate_tables_at_terminal_widths(cli, migrated_app_db: str, width: int) -> None:
    env = {"COLUMNS": str(width)}
    out = cli("seed", "--dry-run", dsn=migrated_app_db, env=env).stdout
    assert_fits(out, width)
    assert re.search(r"section\s+created\s+updated\s+unchanged\s+stale\s+retired\s+skipped", out)
    assert re.search(r"^total(\s+[\d,]+){6}$", out, re.M)
    out = cli("migrate", "history", env=env).stdout
    assert_fits(out, width)
    assert re.search(r"^0001_core_tables\s", out, re.M)
    assert "(head)" in out
