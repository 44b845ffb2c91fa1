"""``memcli stats``: what is in the memory, as bar charts and sparklines (or ``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from memcli.cli.render import print_json
from memcli.cli.state import State, get_state

if TYPE_CHECKING:
    from memcli.people.stats import Stats

EPILOG = (
    "On a large database (over 200,000 conversation memories) counts per tier come from the planner's "
    "statistics and the expiry timeline, growth, top lists and the access histogram from a 5% sample; "
    "the output marks them as estimates (--exact counts everything). Exit codes: 0 done; 2 bad option; "
    "3 cannot connect; 4 not migrated. "
    "Examples: memcli stats · memcli stats --json · memcli stats --exact --days 14"
)
SPARKS = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 40


def sparkline(values: list[int]) -> str:
    if not values:
        return ""
    top = max(values) or 1
    return "".join(SPARKS[min(len(SPARKS) - 1, round(v / top * (len(SPARKS) - 1)))] for v in values)


def bar(value: int, top: int, width: int = BAR_WIDTH) -> str:
    if top <= 0:
        return ""
    return "█" * max(1 if value else 0, round(value / top * width))


def stats(
    ctx: typer.Context,
    exact: Annotated[bool, typer.Option("--exact", help="Count every row instead of estimating.")] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Days of growth and of expiry.")] = 30,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="How many top users and sessions.")] = 10,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """What is in the memory: counts and sizes per tier and content type, expiry timeline, growth per
    day, top users and sessions, access histogram, consolidation ratio."""
    from memcli.people.stats import as_dict, collect
    from memcli.readiness import require_migrated

    state = get_state(ctx, json_)
    with state.connect() as conn:
        require_migrated(conn)
        result = collect(conn, exact=exact, days=days, top=top)
    if state.json:
        print_json(as_dict(result))
        return
    _render(state, result, days)


def _render(state: State, s: Stats, days: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from memcli.health.core import human_bytes

    console = state.console

    def est(name: str) -> str:
        return " (estimate)" if name in s.estimated else ""

    def chart(title: str, rows: list[tuple[str, int, str]]) -> None:
        table = Table(title=title, title_justify="left", box=None, show_header=False)
        table.add_column(no_wrap=True)
        table.add_column(justify="right")
        table.add_column(style="cyan")
        table.add_column(justify="right", style="dim")
        peak = max((n for _, n, _ in rows), default=0)
        for label, n, extra in rows:
            table.add_row(escape(label), f"{n:,}", bar(n, peak), extra)
        console.print(table)

    chart(
        f"Conversation memories by tier: {s.conversation_total:,}{est('tiers')}",
        [(p.name, p.count, human_bytes(p.bytes)) for p in s.tiers],
    )
    chart(
        f"Semantic memories by content type: {s.semantic_total:,}{est('content_types')}",
        [(p.name, p.count, human_bytes(p.bytes)) for p in s.content_types],
    )
    expiring = sum(n for _, n in s.expiring)
    console.print(
        f"Expiring in the next {days} days{est('expiring')}: {expiring:,}  "
        f"{sparkline(_by_day(s.expiring, days, ahead=True))}"
    )
    console.print(
        f"New in the last {days} days{est('growth')}: {sum(n for _, n in s.growth):,}  "
        f"{sparkline(_by_day(s.growth, days, ahead=False))}"
    )
    chart(f"Top users by memories{est('top_users')}", [(str(u), n, "") for u, n in s.top_users])
    chart(f"Top sessions by memories{est('top_sessions')}", [(sid, n, "") for sid, n in s.top_sessions])
    chart(f"Reads per memory{est('access')}", [(label, n, "") for label, n in s.access])
    if s.consolidation_ratio is not None:
        console.print(
            f"Consolidation: {s.consolidations:,} merges replaced {s.memories_merged:,} short-term memories "
            f"({s.consolidation_ratio:g} : 1)"
        )
    else:
        console.print("Consolidation: no merges yet")
    if s.estimated:
        console.print(f"[dim]Estimates: {', '.join(s.estimated)} (use --exact to count every row).[/]")


def _by_day(points: list, days: int, *, ahead: bool) -> list[int]:
    """One value per day for the sparkline, days without rows as zero."""
    from datetime import date, timedelta

    today = date.today()
    counts = dict(points)
    span = (
        [today + timedelta(days=i) for i in range(days)]
        if ahead
        else [today - timedelta(days=days - 1 - i) for i in range(days)]
    )
    return [int(counts.get(d, 0)) for d in span]


def register(app: typer.Typer) -> None:
    """Add ``memcli stats`` to the root app."""
    app.command(epilog=EPILOG)(stats)
