"""The maintenance-run log: one ``system_maintenance_log`` row per step of a run, plus one for the run.

Each row is inserted as ``running`` and committed *before* the work starts, then updated when the step
ends. A run killed half-way therefore leaves its ``running`` row behind as evidence; the next run of any job
that takes one of the same locks (so the old run is certainly gone) closes such rows: ``failed`` with an
"interrupted" error, their start time kept, a finish time at the last sign of life, and the run's row
counting what its steps committed.

While a step runs, every batch adds its rows to the step's row *in the batch's own transaction*
(:func:`count_committed`), so the log and the data cannot disagree, even after ``kill -9``.

Row layout: ``maintenance_type`` is the job (``daily``, ``weekly``, ``monthly``, ``cleanup``,
``consolidate``), ``step`` the step name, or NULL for the row that summarises the whole run. Every row of a
run carries the same ``details.run_id``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (RUNNING, SUCCEEDED, FAILED, SKIPPED)
INTERRUPTED = "interrupted: the run ended without recording a result (killed, or its connection was lost)"
_MAX_ERROR = 2000
# The log row of the step running in this context, which committed batches count into.
_STEP_ENTRY: ContextVar[int | None] = ContextVar("memcli_step_entry", default=None)


@contextmanager
def counting_into(entry_id: int | None) -> Iterator[None]:
    """Batches committed inside the block add their rows to log row ``entry_id`` (None: to nothing)."""
    token = _STEP_ENTRY.set(entry_id)
    try:
        yield
    finally:
        _STEP_ENTRY.reset(token)


def count_committed(conn: psycopg.Connection, rows: int) -> None:
    """Call inside a batch's transaction: its rows count into the running step's log row on commit."""
    entry = _STEP_ENTRY.get()
    if entry is None or rows <= 0:
        return
    conn.execute(
        """
        UPDATE system_maintenance_log
        SET records_processed = coalesce(records_processed, 0) + %s,
            details = coalesce(details, '{}'::jsonb) || jsonb_build_object('progress_at', clock_timestamp())
        WHERE id = %s AND status = %s
        """,
        (int(rows), entry, RUNNING),
    )


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    # datetimes, UUIDs and timedeltas in step results become strings rather than failing the log write
    return Jsonb(value, dumps=partial(json.dumps, default=str))


class RunLog:
    """Writes one run's rows through ``conn``, committing each write at once."""

    def __init__(self, conn: psycopg.Connection, job: str, run_id: str | None = None) -> None:
        self.conn = conn
        self.job = job
        self.run_id = run_id or str(uuid.uuid4())

    def _commit(self) -> None:
        if not self.conn.autocommit:
            self.conn.commit()

    def start(self, step: str | None, details: dict[str, Any] | None = None) -> int:
        """Insert and commit a ``running`` row; returns its id."""
        row = self.conn.execute(
            """
            INSERT INTO system_maintenance_log (maintenance_type, step, started_at, status, details)
            VALUES (%s, %s, clock_timestamp(), %s, %s)
            RETURNING id
            """,
            (self.job, step, RUNNING, _jsonb({"run_id": self.run_id, **(details or {})})),
        ).fetchone()
        self._commit()
        assert row is not None
        return int(row[0])

    def finish(
        self,
        entry_id: int,
        status: str,
        *,
        rows: int = 0,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if status not in STATUSES or status == RUNNING:
            raise ValueError(f"not a final status: {status!r}")
        self.conn.execute(
            """
            UPDATE system_maintenance_log
            SET finished_at = clock_timestamp(),
                duration_seconds = extract(epoch FROM clock_timestamp() - started_at),
                records_processed = %s, status = %s, error = %s,
                details = coalesce(details, '{}'::jsonb) || %s
            WHERE id = %s
            """,
            (int(rows), status, error[:_MAX_ERROR] if error else None, _jsonb(details or {}), entry_id),
        )
        self._commit()

    def close_interrupted(self, jobs: Sequence[str] | None = None) -> int:
        """Close the rows left ``running`` by dead runs of ``jobs`` (default: this job); call only while
        holding every lock those jobs take, so none of them can be alive.

        Each row becomes ``failed`` with the "interrupted" error and a finish time at its last sign of life
        (its start, or the last batch it counted); a run's row takes the sum of its steps' committed rows.
        """
        cursor = self.conn.execute(
            """
            WITH dead AS (
                SELECT id, details ->> 'run_id' AS run_id,
                       greatest(started_at, (details ->> 'progress_at')::timestamptz) AS seen
                FROM system_maintenance_log
                WHERE maintenance_type = ANY(%(jobs)s) AND status = %(running)s
                FOR UPDATE
            ), runs AS (
                SELECT details ->> 'run_id' AS run_id,
                       sum(records_processed) FILTER (WHERE step IS NOT NULL) AS committed,
                       max(greatest(started_at, finished_at,
                                    (details ->> 'progress_at')::timestamptz)) AS seen
                FROM system_maintenance_log
                WHERE maintenance_type = ANY(%(jobs)s)
                  AND details ->> 'run_id' IN (SELECT run_id FROM dead)
                GROUP BY 1
            ), closing AS (
                SELECT d.id,
                       CASE WHEN m.step IS NULL THEN coalesce(r.seen, d.seen) ELSE d.seen END AS finished,
                       CASE WHEN m.step IS NULL THEN coalesce(r.committed, 0)
                            ELSE coalesce(m.records_processed, 0) END AS committed
                FROM dead d JOIN system_maintenance_log m ON m.id = d.id
                LEFT JOIN runs r ON r.run_id = d.run_id
            )
            UPDATE system_maintenance_log m
            SET status = %(failed)s, error = %(error)s, finished_at = c.finished,
                duration_seconds = extract(epoch FROM c.finished - m.started_at),
                records_processed = c.committed,
                details = coalesce(m.details, '{}'::jsonb)
                          || jsonb_build_object('closed_by_run', %(run_id)s::text)
            FROM closing c
            WHERE m.id = c.id
            """,
            {
                "jobs": list(jobs) if jobs is not None else [self.job],
                "running": RUNNING,
                "failed": FAILED,
                "error": INTERRUPTED,
                "run_id": self.run_id,
            },
        )
        self._commit()
        return cursor.rowcount
