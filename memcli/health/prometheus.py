"""The report as node-exporter textfile metrics (Prometheus text exposition format 0.0.4)."""

from __future__ import annotations

import math
import time
from typing import Any

from memcli.health.core import HealthReport, Status

PREFIX = "memcli_health"
STATUS_VALUE = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.SKIP: -1}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _format(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        if not samples:
            return
        self.lines.append(f"# HELP {PREFIX}_{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}_{name} gauge")
        for labels, value in samples:
            self.lines.append(f"{PREFIX}_{name}{_labels(labels)} {_format(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def format_prometheus(report: HealthReport, exit_code: int, now: float | None = None) -> str:
    """Gauges: up, overall status, exit code, duration, and per check its status, value and duration."""
    out = _Writer()
    database = report.database.get("name", "")
    out.family("up", "1 when memcli health reached the database and its memory schema.", [({}, 1)])
    out.family(
        "status",
        "Overall health: 0 ok, 1 warn, 2 fail.",
        [({"database": database}, STATUS_VALUE[report.status])],
    )
    out.family("exit_code", "Exit code of the memcli health run.", [({}, exit_code)])
    out.family(
        "checks_not_run",
        "Checks that could not run (privileges, row-level security): blind spots.",
        [({}, len(report.not_checked))],
    )
    out.family("duration_seconds", "Time the health run took.", [({}, report.elapsed_ms / 1000)])
    out.family(
        "last_run_timestamp_seconds", "When the health run finished (Unix time).", [({}, now or time.time())]
    )
    out.family(
        "check_status",
        "Status of each check: 0 ok, 1 warn, 2 fail, -1 skipped.",
        [({"check": r.name, "group": r.group}, STATUS_VALUE[r.status]) for r in report.results],
    )
    values = []
    for result in report.results:
        number = _number(result.value)
        if number is not None:
            values.append(({"check": result.name, "unit": result.unit or ""}, number))
    out.family("check_value", "Value each check measured, in the unit of its label.", values)
    out.family(
        "check_duration_seconds",
        "Time each check took.",
        [({"check": r.name}, r.elapsed_ms / 1000) for r in report.results],
    )
    return out.text()


def format_prometheus_down(exit_code: int, now: float | None = None) -> str:
    """What to write when health could not run (no connection, schema missing): up 0 and the exit code."""
    out = _Writer()
    out.family("up", "1 when memcli health reached the database and its memory schema.", [({}, 0)])
    out.family("exit_code", "Exit code of the memcli health run.", [({}, exit_code)])
    out.family(
        "last_run_timestamp_seconds", "When the health run finished (Unix time).", [({}, now or time.time())]
    )
    return out.text()
