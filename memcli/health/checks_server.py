"""Server checks: connection round trip, Postgres version support, pgvector version."""

from __future__ import annotations

import time
from datetime import date

from memcli.health.core import CheckResult, Context, Status, health_check, warn_if
from memcli.health.thresholds import PGVECTOR_MIN_VERSION

# End of community support per major version (postgresql.org/support/versioning).
POSTGRES_EOL = {
    12: date(2024, 11, 21),
    13: date(2025, 11, 13),
    14: date(2026, 11, 12),
    15: date(2027, 11, 11),
    16: date(2028, 11, 9),
    17: date(2029, 11, 8),
    18: date(2030, 11, 14),
}
MIN_SUPPORTED_MAJOR = 13  # gen_random_uuid() built in; pgvector 0.8 needs 13+


def version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@health_check("server")
def connection(ctx: Context) -> CheckResult:
    """Connection round-trip latency.

    Fix: check the network path to the database (same region? connection pooler?).
    """
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        ctx.conn.execute("SELECT 1").fetchone()
        samples.append((time.perf_counter() - started) * 1000)
    latency = round(min(samples), 3)
    warn, fail = ctx.thresholds["latency_warn_ms"], ctx.thresholds["latency_fail_ms"]
    status = Status.FAIL if latency >= fail else Status.WARN if latency >= warn else Status.OK
    return CheckResult(
        status,
        value=latency,
        unit="ms",
        threshold=f"< {warn:g} ms (fail ≥ {fail:g} ms)",
        message=f"round trip {latency:.2f} ms (best of 3)",
        details={"samples_ms": [round(s, 3) for s in samples]},
    )


@health_check("server")
def server_version(ctx: Context) -> CheckResult:
    """Postgres major version supported.

    Fix: plan an upgrade to a supported Postgres major version (postgresql.org/support/versioning).
    """
    row = ctx.row("SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n")
    assert row is not None
    major = int(row["n"]) // 10000
    eol = POSTGRES_EOL.get(major)
    today = date.today()
    details = {"server_version": row["v"], "major": major, "end_of_life": eol}
    if major < MIN_SUPPORTED_MAJOR:
        status, message = (
            Status.FAIL,
            f"Postgres {row['v']} is older than {MIN_SUPPORTED_MAJOR}, which memcli needs",
        )
    elif eol is not None and eol < today:
        status, message = Status.WARN, f"Postgres {row['v']}: community support ended {eol.isoformat()}"
    else:
        until = f", supported until {eol.isoformat()}" if eol else ""
        status, message = Status.OK, f"Postgres {row['v']}{until}"
    return CheckResult(
        status,
        value=row["v"],
        unit="version",
        threshold=f"major ≥ {MIN_SUPPORTED_MAJOR} and not past end of life",
        message=message,
        details=details,
    )


@health_check(
    "server",
    hint=f"upgrade the pgvector package to {PGVECTOR_MIN_VERSION} or later, "
    "then ALTER EXTENSION vector UPDATE",
)
def pgvector(ctx: Context) -> CheckResult:
    """pgvector installed, version without known index bugs."""
    row = ctx.row(
        """
        SELECT e.extversion AS installed, a.default_version AS available
        FROM pg_available_extensions a LEFT JOIN pg_extension e ON e.extname = a.name
        WHERE a.name = 'vector'
        """
    )
    threshold = f"≥ {PGVECTOR_MIN_VERSION}"
    if row is None or row["installed"] is None:
        return CheckResult(
            Status.FAIL,
            threshold=threshold,
            message="pgvector is not installed in this database"
            + ("" if row else " (and the server does not ship it)"),
            hint="install the pgvector package on the server, then run: memcli migrate",
            details={"available": row["available"] if row else None},
        )
    installed, available = str(row["installed"]), str(row["available"])
    # The shared library on the server is the packaged (default) version; index bug fixes live in it,
    # while extversion is the SQL-level version last installed with CREATE/ALTER EXTENSION.
    library = max(installed, available, key=version_tuple)
    details = {"installed": installed, "library": available}
    message = f"pgvector {installed}"
    if version_tuple(available) > version_tuple(installed):
        message += f" (server ships {available}: ALTER EXTENSION vector UPDATE)"
    buggy = version_tuple(library) < version_tuple(PGVECTOR_MIN_VERSION)
    if buggy:
        message += (
            f"; releases before {PGVECTOR_MIN_VERSION} have HNSW vacuum bugs "
            "(index corruption, 'hnsw graph not repaired')"
        )
    return warn_if(buggy, installed, "version", threshold=threshold, message=message, details=details)
