"""Consolidation: merge old short-term memories per session, decay relevance, archive and forget.

- merge: for every session with ``short_term`` memories older than the threshold, one transaction calls
  ``consolidate_session_memories(session, threshold)``: the SQL function inserts one merged ``long_term``
  memory per owner (memories of different users never merge; those without a user form their own group),
  writes a ``merge`` log row for each and deletes the originals, so a killed run never leaves originals
  deleted without their merged memory and log row. memcli and applications share that one implementation.
- decay: ``relevance_score = relevance_score * decay_factor`` for relevance rows not recalculated within
  ``relevance.decay_interval_hours``.
- archive: ``long_term`` memories with importance below ``archive.max_importance`` and older than
  ``archive.min_age_days`` become ``archived`` with the archived tier's expiry; one ``archive`` log row per
  session and batch lists their ids.
- forget: ``archived`` memories never accessed (``access_count = 0``) and older than ``forget.min_age_days``
  are deleted; one ``forget`` log row per session and batch keeps their ids.

Every transaction sets ``memcli.maintenance = 'on'`` so the access trigger does not count these updates as
accesses. Dry runs count and change nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from memcli.errors import first_line
from memcli.jobs import common
from memcli.settings import get_settings

if TYPE_CHECKING:
    import psycopg

MAX_LISTED_IDS = 100  # ids listed in a result (the log table keeps all of them)


def _days(value: Any) -> timedelta:
    return timedelta(days=float(value))


def _fmt_days(age: timedelta) -> str:
    return f"{age.total_seconds() / 86400:g}"


@dataclass
class MergeResult:
    dry_run: bool
    older_than_seconds: float = 0.0
    sessions: int = 0  # sessions consolidated (dry run: that would be)
    memories_merged: int = 0  # short_term memories merged away (dry run: that would be)
    new_memory_ids: list[str] = field(default_factory=list)  # first MAX_LISTED_IDS
    skipped_sessions: list[dict[str, str]] = field(default_factory=list)  # busy sessions, left for next run
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.memories_merged


@dataclass
class DecayResult:
    dry_run: bool
    interval_seconds: float = 0.0
    decayed: int = 0  # dry run: rows that would decay
    batches: int = 0
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.decayed


@dataclass
class _MoveResult:
    """What archive and forget both count: the sessions touched, the log rows written, the batches."""

    dry_run: bool
    min_age_seconds: float = 0.0
    sessions: int = 0
    log_rows: int = 0
    batches: int = 0
    duration_seconds: float = 0.0

    kind: ClassVar[str]  # the consolidation_type of its log rows

    def add(self, moved: int) -> None:
        raise NotImplementedError


@dataclass
class ArchiveResult(_MoveResult):
    kind: ClassVar[str] = "archive"
    max_importance: float = 0.0
    expires_in_days: float = 0.0
    archived: int = 0  # dry run: memories that would be archived

    @property
    def rows(self) -> int:
        return self.archived

    def add(self, moved: int) -> None:
        self.archived += moved


@dataclass
class ForgetResult(_MoveResult):
    kind: ClassVar[str] = "forget"
    forgotten: int = 0  # dry run: memories that would be forgotten

    @property
    def rows(self) -> int:
        return self.forgotten

    def add(self, moved: int) -> None:
        self.forgotten += moved


@dataclass(frozen=True)
class ConsolidateOptions:
    """What a consolidation is asked to do: ``memcli consolidate``'s options, and the weekly job's.

    The merge always runs; ``decay``, ``archive`` and ``forget`` add those parts. Every threshold left None
    comes from memory_settings (see each part's function).
    """

    dry_run: bool = False
    session: str | None = None
    older_than: timedelta | None = None
    decay: bool = False
    archive: bool = False
    forget: bool = False
    decay_interval: timedelta | None = None
    archive_max_importance: float | None = None
    archive_min_age: timedelta | None = None
    forget_min_age: timedelta | None = None
    batch_size: int | None = None
    timeouts: common.Timeouts = common.DEFAULT_TIMEOUTS


def _session_filter(session: str | None, column: str = "session_id") -> Any:
    from psycopg import sql

    if session is None:
        return sql.SQL("")
    return sql.SQL(" AND {} = %(session)s").format(sql.Identifier(column))


_CANDIDATES = """
SELECT session_id, count(*) FROM conversation_memory
WHERE memory_type = 'short_term' AND created_at < now() - %(age)s::interval
  AND (expires_at IS NULL OR expires_at >= now()){session}
GROUP BY session_id ORDER BY session_id
"""


def _batch_size(options: ConsolidateOptions, settings: dict[str, Any]) -> int:
    return common.check_batch_size(
        options.batch_size if options.batch_size is not None else settings["cleanup.batch_size"]
    )


def _cutoff(conn: psycopg.Connection, age: timedelta) -> Any:
    """``now() - age``, read once so every batch of a run judges by the same moment."""
    return conn.execute("SELECT now() - %s::interval", (age,)).fetchone()[0]  # type: ignore[index]


def merge_sessions(
    conn: psycopg.Connection,
    options: ConsolidateOptions = ConsolidateOptions(),
    *,
    progress: common.ProgressCallback | None = None,
) -> MergeResult:
    """Merge each session's old short-term memories through ``consolidate_session_memories``."""
    from psycopg import errors, sql

    started = time.perf_counter()
    session, timeouts = options.session, options.timeouts
    with common.own_transactions(conn):
        age = (
            options.older_than
            if options.older_than is not None
            else _days(get_settings(conn)["consolidation.min_age_days"])
        )
        result = MergeResult(dry_run=options.dry_run, older_than_seconds=age.total_seconds())
        params: dict[str, Any] = {"age": age, "session": session}
        candidates = conn.execute(
            sql.SQL(_CANDIDATES).format(session=_session_filter(session)), params
        ).fetchall()
        if options.dry_run:
            result.sessions = len(candidates)
            result.memories_merged = sum(int(n) for _, n in candidates)
            result.duration_seconds = time.perf_counter() - started
            return result

        def consolidate_one(session_id: str) -> tuple[list[uuid.UUID], int]:
            # one merged memory per owner of the session's memories: users' memories never mix
            new_ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM consolidate_session_memories(%s, %s::interval) AS merged(id)",
                    (session_id, age),
                )
            ]
            if not new_ids:
                return [], 0
            # session_id lets the log's session index find the rows; new_memory_id has no index
            merged = conn.execute(
                """
                SELECT coalesce(sum(cardinality(old_memory_ids)), 0) FROM memory_consolidation_log
                WHERE session_id = %s AND new_memory_id = ANY(%s) AND consolidation_type = 'merge'
                """,
                (session_id, new_ids),
            ).fetchone()
            return new_ids, int(merged[0]) if merged else 0

        def book_merge(outcome: tuple[list[uuid.UUID], int]) -> None:
            new_ids, merged = outcome
            if new_ids:
                result.sessions += 1
                result.memories_merged += merged
                room = MAX_LISTED_IDS - len(result.new_memory_ids)
                result.new_memory_ids.extend(str(new_id) for new_id in new_ids[: max(room, 0)])

        with common.partial_on_failure(result, started):
            if progress:
                progress(0, len(candidates))
            for done, (session_id, _) in enumerate(candidates, start=1):
                try:
                    common.in_batch(
                        conn,
                        timeouts,
                        lambda s=session_id: consolidate_one(s),
                        book_merge,
                        rows=lambda outcome: outcome[1],
                    )
                except (errors.LockNotAvailable, errors.DeadlockDetected) as exc:
                    # the application keeps this session busy: leave it whole for the next run
                    result.skipped_sessions.append({"session_id": session_id, "reason": first_line(exc)})
                if progress:
                    progress(done, len(candidates))
    result.duration_seconds = time.perf_counter() - started
    return result


# Batches pick their ids with ``id = ANY(ARRAY(subquery))``: a primary-key lookup per row, where a join
# with the subquery may be planned as a hash join over a scan of the whole table in every batch.
_DECAY = """
UPDATE context_relevance
SET relevance_score = relevance_score * coalesce(decay_factor, 1), last_calculated = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM context_relevance
    WHERE last_calculated < %(cutoff)s{session}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
))
"""


def decay_relevance(
    conn: psycopg.Connection, options: ConsolidateOptions = ConsolidateOptions()
) -> DecayResult:
    """Multiply relevance by its decay factor where it was last calculated more than ``decay_interval``
    ago (relevance.decay_interval_hours when None)."""
    from psycopg import sql

    started = time.perf_counter()
    session = options.session
    with common.own_transactions(conn):
        settings = get_settings(conn)
        every = (
            options.decay_interval
            if options.decay_interval is not None
            else timedelta(hours=float(settings["relevance.decay_interval_hours"]))
        )
        size = _batch_size(options, settings)
        result = DecayResult(dry_run=options.dry_run, interval_seconds=every.total_seconds())
        params: dict[str, Any] = {"cutoff": _cutoff(conn, every), "session": session, "limit": size}
        if options.dry_run:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM context_relevance WHERE last_calculated < %(cutoff)s{}").format(
                    _session_filter(session)
                ),
                params,
            ).fetchone()
            result.decayed = int(row[0]) if row else 0
            result.duration_seconds = time.perf_counter() - started
            return result
        statement = sql.SQL(_DECAY).format(session=_session_filter(session))

        def book_decay(updated: int) -> None:
            if updated > 0:
                result.batches += 1
                result.decayed += updated

        with common.partial_on_failure(result):
            while True:
                updated = common.in_batch(
                    conn,
                    options.timeouts,
                    lambda: conn.execute(statement, params).rowcount,
                    book_decay,
                    rows=lambda n: max(n, 0),
                )
                if updated < size:  # the last batch
                    break
    result.duration_seconds = time.perf_counter() - started
    return result


# The memories archive and forget act on; the batch statements and the dry runs' counts share them.
_ARCHIVE_WHERE = (
    "memory_type = 'long_term' AND importance_score < %(max_importance)s AND created_at < %(cutoff)s"
)
_FORGET_WHERE = "memory_type = 'archived' AND access_count = 0 AND created_at < %(cutoff)s"

# Archive and forget differ only in what they do to the batch's rows; each logs the ids per session.
_MOVE = """
WITH moved AS (
    {change}
    WHERE id = ANY(ARRAY(
        SELECT id FROM conversation_memory
        WHERE {where}
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING id, session_id
), logged AS (
    INSERT INTO memory_consolidation_log
        (session_id, consolidation_type, old_memory_ids, new_memory_id, consolidation_reason, details)
    SELECT session_id, {kind}, array_agg(id ORDER BY id), NULL, %(reason)s, %(details)s
    FROM moved GROUP BY session_id
    RETURNING session_id
)
SELECT (SELECT count(*) FROM moved), (SELECT array_agg(session_id) FROM logged)
"""
_ARCHIVE = (
    "UPDATE conversation_memory "
    "SET memory_type = 'archived', expires_at = now() + %(expires_days)s * interval '1 day'"
)
_FORGET = "DELETE FROM conversation_memory"


def _count_memories(conn: psycopg.Connection, where: Any, params: dict[str, Any]) -> tuple[int, int]:
    """Dry run of archive/forget: the memories matching ``where``, and their sessions."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL("SELECT count(*), count(DISTINCT session_id) FROM conversation_memory WHERE {}").format(
            where
        ),
        params,
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _move(
    conn: psycopg.Connection,
    options: ConsolidateOptions,
    where: str,
    change: str,
    params: dict[str, Any],
    result: _MoveResult,
) -> None:
    """Archive or forget the memories matching ``where`` (count them on a dry run), in batches until none
    is left, booking each into ``result``."""
    from psycopg import sql

    selected = sql.SQL(where) + _session_filter(options.session)  # type: ignore[arg-type]
    params = {**params, "session": options.session}
    if options.dry_run:
        moved, result.sessions = _count_memories(conn, selected, params)
        result.add(moved)
        return
    statement = sql.SQL(_MOVE).format(
        change=sql.SQL(change),  # type: ignore[arg-type]
        where=selected,
        kind=sql.Literal(result.kind),
    )
    sessions: set[str] = set()

    def run() -> tuple[int, list[str]]:
        row = conn.execute(statement, params).fetchone()
        return (int(row[0]), list(row[1] or [])) if row else (0, [])

    def book(outcome: tuple[int, list[str]]) -> None:
        moved, logged = outcome
        if moved == 0:
            return
        result.batches += 1
        result.log_rows += len(logged)
        sessions.update(logged)
        result.sessions = len(sessions)
        result.add(moved)

    with common.partial_on_failure(result):
        while True:
            moved, _ = common.in_batch(conn, options.timeouts, run, book, rows=lambda outcome: outcome[0])
            if moved < params["limit"]:  # the last batch: SKIP LOCKED found no more candidates
                break


def archive_memories(
    conn: psycopg.Connection, options: ConsolidateOptions = ConsolidateOptions()
) -> ArchiveResult:
    """Archive long-term memories of importance below ``archive_max_importance`` older than
    ``archive_min_age`` (archive.max_importance and archive.min_age_days when None)."""
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    with common.own_transactions(conn):
        settings = get_settings(conn)
        importance = float(
            options.archive_max_importance
            if options.archive_max_importance is not None
            else settings["archive.max_importance"]
        )
        age = (
            options.archive_min_age
            if options.archive_min_age is not None
            else _days(settings["archive.min_age_days"])
        )
        expires_days = float(settings["retention.archived_days"])
        result = ArchiveResult(
            dry_run=options.dry_run,
            max_importance=importance,
            min_age_seconds=age.total_seconds(),
            expires_in_days=expires_days,
        )
        criteria = {"max_importance": importance, "min_age_days": age.total_seconds() / 86400}
        params: dict[str, Any] = {
            "max_importance": importance,
            "cutoff": _cutoff(conn, age),
            "limit": _batch_size(options, settings),
            "expires_days": expires_days,
            "reason": f"long_term, importance below {importance:g}, older than {_fmt_days(age)} days",
            "details": Jsonb({"criteria": criteria, "expires_in_days": expires_days}),
        }
        _move(conn, options, _ARCHIVE_WHERE, _ARCHIVE, params, result)
    result.duration_seconds = time.perf_counter() - started
    return result


def forget_memories(
    conn: psycopg.Connection, options: ConsolidateOptions = ConsolidateOptions()
) -> ForgetResult:
    """Delete archived memories never accessed and older than ``forget_min_age`` (forget.min_age_days when
    None), logging their ids."""
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    with common.own_transactions(conn):
        settings = get_settings(conn)
        age = (
            options.forget_min_age
            if options.forget_min_age is not None
            else _days(settings["forget.min_age_days"])
        )
        result = ForgetResult(dry_run=options.dry_run, min_age_seconds=age.total_seconds())
        params: dict[str, Any] = {
            "cutoff": _cutoff(conn, age),
            "limit": _batch_size(options, settings),
            "reason": f"archived, never accessed, older than {_fmt_days(age)} days",
            "details": Jsonb({"criteria": {"access_count": 0, "min_age_days": age.total_seconds() / 86400}}),
        }
        _move(conn, options, _FORGET_WHERE, _FORGET, params, result)
    result.duration_seconds = time.perf_counter() - started
    return result
