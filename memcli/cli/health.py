"""``memcli health``: a Rich table on a terminal, JSON for scripts, node-exporter textfile metrics."""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import print_json, to_jsonable
from memcli.cli.state import State, get_state
from memcli.errors import ExitCode

if TYPE_CHECKING:
    from memcli.health import CheckResult, HealthReport

STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    prometheus = "prometheus"


def health(
    ctx: typer.Context,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check", "-c", metavar="NAME", help="Run only this check or group (repeatable); default: all."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too, not only failures.")
    ] = False,
    allow_skip: Annotated[
        bool,
        typer.Option(
            "--allow-skip",
            help="Exit 0 even when some checks could not run (a monitoring role that may not read the "
            "memories); they are still listed.",
        ),
    ] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also run expensive checks (vector index recall probe).")
    ] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (same as --format json).")
    ] = False,
    format_: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format", "-f", help="table (default on a terminal), json, or prometheus textfile metrics."
        ),
    ] = None,
    list_: Annotated[
        bool,
        typer.Option(
            "--list", help="List the checks and the thresholds ([health.thresholds] keys); no database."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file instead of stdout, atomically (for node-exporter's textfile collector).",
        ),
    ] = None,
) -> None:
    """Check that the memory database is healthy: server, schema, memory hygiene, maintenance runs,
    Postgres internals and the vector index. Read-only, except that --deep records the recall it measured
    (memory_settings index.last_recall), which a plain run then reports against search.recall_target.

    Each check reports OK / WARN / FAIL (or SKIP when it cannot run, e.g. for lack of privileges), the value
    it measured, its threshold and what to do. Thresholds: [health.thresholds] in memcli.toml.

    A check that could not run (missing privileges, rows hidden by row-level security) is a blind spot, not
    a pass: the run says which and why, and exits 1 unless --allow-skip.

    """
    from memcli.errors import ConnectError, NotReadyError
    from memcli.health import load_thresholds, resolve_names, run_checks

    state = get_state(ctx, json_)
    fmt = format_ or (OutputFormat.json if state.json else OutputFormat.table)
    thresholds = load_thresholds(state.config().section("health.thresholds"))
    if list_:
        _print_catalogue(state, thresholds)
        return
    names = resolve_names(check, deep)  # unknown names fail before connecting (exit 2)
    try:
        conn = state.connect()
        try:
            report = run_checks(conn, names, thresholds, deep, embedder=_deep_embedder(state, names))
            if deep:
                from memcli.vector_recall import store_from_report

                # The checks run read-only; the recall they measured is recorded afterwards so a plain
                # `memcli health` reports it against the target.
                store_from_report(conn, report)
        finally:
            conn.close()
    except (ConnectError, NotReadyError) as exc:
        if fmt is OutputFormat.prometheus:
            from memcli.health.prometheus import format_prometheus_down

            _emit(format_prometheus_down(int(exc.exit_code)), output)
        raise
    code = report.exit_code(strict, allow_skip)
    if fmt is OutputFormat.prometheus:
        from memcli.health.prometheus import format_prometheus

        _emit(format_prometheus(report, code), output)
    elif fmt is OutputFormat.json:
        document = report_document(report, code, strict)
        if output is not None:
            import json

            _emit(json.dumps(to_jsonable(document), indent=2) + "\n", output)
        else:
            print_json(document)
    elif output is not None:
        _emit(render_text(report, code, strict, quiet=state.quiet), output)
    else:
        state.console.print(render_table(report, code, strict, quiet=state.quiet))
    if report.not_checked and fmt is not OutputFormat.table:
        from memcli.cli.render import err

        err(f"Warning: {report.not_checked_summary()}")
    raise typer.Exit(code)


def _print_catalogue(state: Any, thresholds: Any) -> None:
    from memcli.health import REGISTRY, THRESHOLDS, resolve_names

    checks = [
        {"name": n, "group": REGISTRY[n].group, "title": REGISTRY[n].title, "deep_only": REGISTRY[n].deep}
        for n in resolve_names(None, deep=True)
    ]
    limits = [
        {
            "key": key,
            "value": thresholds[key],
            "default": t.default,
            "description": t.description,
            "source": t.source,
        }
        for key, t in THRESHOLDS.items()
    ]
    if state.json:
        print_json({"checks": checks, "thresholds": limits})
        return
    from memcli.cli.render import Col, FitTable

    table = FitTable(Col("Check"), Col("Group", drop=1), Col("What it checks", text=True))
    for c in checks:
        deep = " (--deep)" if c["deep_only"] and "--deep" not in c["title"] else ""
        table.add_row(c["name"], c["group"], c["title"] + deep)
    state.console.print(table)
    table = FitTable(
        Col("[health.thresholds] key"), Col("Value"), Col("Meaning", text=True), Col("Source", drop=1)
    )
    for t in limits:
        value = f"{t['value']:g}" + ("" if t["value"] == t["default"] else f" (default {t['default']:g})")
        table.add_row(t["key"], value, t["description"], t["source"])
    state.console.print(table)


def report_document(report: HealthReport, code: int, strict: bool) -> dict[str, Any]:
    """The --json document: the report's fields, how it was judged (exit code, strict), counts, checks."""
    document = to_jsonable(report)
    checks = document.pop("results")
    return {
        "status": document.pop("status"),
        "exit_code": int(code),
        "strict": strict,
        **document,
        "counts": report.counts(),
        "complete": not report.not_checked,
        "not_checked": [{"name": r.name, "reason": r.message, "hint": r.hint} for r in report.not_checked],
        "checks": checks,
    }


def format_value(result: CheckResult) -> str:
    from memcli.health.core import human_bytes, human_duration

    value, unit = result.value, result.unit
    if value is None:
        return "-"
    approx = "~" if result.estimate and isinstance(value, int | float) and value else ""
    if unit == "bytes" and isinstance(value, int | float):
        return approx + human_bytes(float(value))
    if unit == "ratio" and isinstance(value, int | float):
        return f"{value:.2%}"
    if unit == "ms" and isinstance(value, int | float):
        return f"{value:.2f} ms"
    if unit == "seconds" and isinstance(value, int | float):
        return human_duration(value)
    if isinstance(value, int):
        return f"{approx}{value:,}"
    if isinstance(value, float):
        return f"{approx}{value:,.6g}"
    return str(value)


def _summary(report: HealthReport, code: int, strict: bool) -> str:
    counts = report.counts()
    database = report.database.get("name", "?")
    return (
        f"{report.status.value.upper()} — {len(report.results)} checks: {counts['ok']} ok, "
        f"{counts['warn']} warn, {counts['fail']} fail, {counts['skip']} skipped · database {database} · "
        f"{report.elapsed_ms:.0f} ms"
        f" · exit {code}" + (" (strict)" if strict else "")
    )


def render_table(report: HealthReport, code: int, strict: bool, quiet: bool = False) -> Any:
    """The checks as a table that fits the console: at 80 columns the check, its status and the wrapped
    finding stay; the value and threshold then move into the finding."""
    from rich.console import Group
    from rich.text import Text

    from memcli.cli.render import Col, FitTable

    table = FitTable(
        Col("Check"),
        Col("Status"),
        Col("Value", justify="right", drop=1, max_width=16),
        Col("Threshold", drop=2, max_width=24),
        Col("Finding / what to do", text=True),
    )
    group = None
    for result in report.results:
        if quiet and result.status.value == "ok":
            continue
        if group is not None and result.group != group:
            table.add_section()
        group = result.group
        finding = Text(result.message)
        if result.hint and result.status.value != "ok":
            finding.append(f"\n→ {result.hint}", style="dim")
        table.add_row(
            result.name,
            Text(result.status.value.upper(), style=STYLES[result.status.value]),
            format_value(result),
            result.threshold or "",
            finding,
            fold=result.status.value != "ok",  # at 80 columns a passed check's threshold is noise
        )
    summary = Text(_summary(report, code, strict), style=STYLES[report.status.value])
    if report.not_checked:
        summary.append("\n" + report.not_checked_summary(), style="bold yellow")
    return Group(table, summary) if table.row_count else summary


def render_text(report: HealthReport, code: int, strict: bool, quiet: bool = False) -> str:
    from memcli.cli.render import PIPE_WIDTH, render_plain

    return render_plain(render_table(report, code, strict, quiet), PIPE_WIDTH)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    write_atomically(output, text)


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it, so readers never see half a file."""
    from memcli.errors import ConfigError

    path = path.expanduser()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot write --output {path}: {exc.strerror or exc}", hint="check that the folder exists"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # node-exporter usually runs as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


HEALTH_EPILOG = epilog(
    exit_codes(
        {
            ExitCode.OK: "all OK",
            ExitCode.PROBLEMS: "any FAIL, any WARN with --strict, or a check that could not run "
            "(without --allow-skip)",
            ExitCode.USAGE: "bad option or threshold",
            ExitCode.CONNECT: "cannot connect",
            ExitCode.NOT_READY: "the memory schema is not migrated",
        }
    ),
    examples=(
        "memcli health",
        "memcli health --check schema --check maintenance_daily",
        "memcli health --strict --json",
        "memcli health --format prometheus -o /var/lib/node_exporter/textfile/memcli.prom",
        "memcli health --list",
    ),
)


def register(app: typer.Typer) -> None:
    """Add ``memcli health`` to the root app."""
    app.command("health", epilog=HEALTH_EPILOG)(health)


def _deep_embedder(state: State, names: list[str]) -> Any:
    """The configured embedder, for the drift check (built only when it runs; the model loads on use)."""
    if "embedding_drift" not in names:
        return None
    from memcli.embeddings import get_embedder

    return get_embedder(state.config())
