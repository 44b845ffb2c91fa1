"""The maintenance-run log: one ``system_maintenance_log`` row per step of a run, plus one for the run.

Each row is inserted as ``running`` and committed *before* the work starts, then updated when the step
ends. A run killed half-way therefore leaves its ``running`` row behind as evidence; the next run of the same
job (which holds the job's lock, so the old run is certainly gone) marks such rows ``failed`` with an
"interrupted" error, keeping their start time.

Row layout: ``maintenance_type`` is the job (``daily``, ``weekly``, ``monthly``, ``cleanup``,
``consolidate``), ``step`` the step name, or NULL for the row that summarises the whole run. Every row of a
run carries the same ``details.run_id``.
"""

from __future__ import annotations

import json
import uuid
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

    def close_interrupted(self) -> int:
        """Mark rows of this job still ``running`` as failed (call only while holding the job's lock)."""
        cursor = self.conn.execute(
            """
            UPDATE system_maintenance_log SET status = %s, error = %s
            WHERE maintenance_type = %s AND status = %s
            """,
            (FAILED, INTERRUPTED, self.job, RUNNING),
        )
        self._commit()
        return cursor.rowcount
