"""What every maintenance job shares: short batch transactions with timeouts, and partial results.

A batch is one transaction that sets, for itself only (``SET LOCAL`` via ``set_config(..., true)``):
- ``lock_timeout``: never queue behind the application's locks for long;
- ``statement_timeout``: never hold locks for long either;
- ``memcli.maintenance = 'on'``: the access-tracking trigger then does not count maintenance updates as
  reads of the memory.
A batch that hits ``lock_timeout`` (or a deadlock) is retried a few times with a short pause; anything else
propagates, and the work committed by earlier batches stays done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from memcli.errors import ConfigError
from memcli.jobs import interrupts, runlog
from memcli.schema.names import MEMORY_TYPES

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

TIERS = MEMORY_TYPES  # the tiers a job may be limited to
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Timeouts:
    lock_timeout_ms: int = 2000  # batch transactions
    statement_timeout_ms: int = 60_000  # batch transactions
    lock_retries: int = 3  # a batch that timed out waiting for a lock is retried this often
    ddl_lock_timeout_ms: int = 10_000  # VACUUM, ANALYZE, REINDEX CONCURRENTLY (no statement timeout)


DEFAULT_TIMEOUTS = Timeouts()


@contextmanager
def own_transactions(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Run the block with ``conn`` in autocommit mode, so each batch commits on its own."""
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "the connection has a transaction open; commit or roll back before a maintenance job"
        )
    previous = conn.autocommit
    conn.autocommit = True
    try:
        yield conn
    finally:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.autocommit = previous


@contextmanager
def maintenance_transaction(
    conn: psycopg.Connection, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> Iterator[None]:
    with conn.transaction():
        conn.execute(
            """
            SELECT set_config('lock_timeout', %s, true),
                   set_config('statement_timeout', %s, true),
                   set_config('memcli.maintenance', 'on', true)
            """,
            (f"{int(timeouts.lock_timeout_ms)}ms", f"{int(timeouts.statement_timeout_ms)}ms"),
        )
        yield


def in_batch(
    conn: psycopg.Connection,
    timeouts: Timeouts,
    work: Callable[[], T],
    record: Callable[[T], None] | None = None,
    rows: Callable[[T], int] | None = None,
) -> T:
    """Run ``work`` in one maintenance transaction, retrying when it only timed out waiting for a lock.

    ``record`` books the committed result into the job's totals; signals are held from the end of ``work``
    until it returns, so a batch is either rolled back or both committed and counted. ``rows`` says how
    many rows the batch processed: they count into the running step's log row in the same transaction.
    """

    def attempt() -> T:
        with ExitStack() as held:
            with maintenance_transaction(conn, timeouts):
                value = work()
                if rows is not None:
                    runlog.count_committed(conn, rows(value))
                held.enter_context(interrupts.deferred())
            if record is not None:
                record(value)
            return value

    return retry_on_lock(timeouts.lock_retries, attempt)


def backoff(tries: int) -> float:
    """Seconds to pause before retry number ``tries`` (1, 2, ...): doubling from 0.1 s, at most 1 s."""
    return min(0.05 * 2**tries, 1.0)


def retry_on_lock(
    retries: int,
    attempt: Callable[[], T],
    pause: Callable[[int], float] = backoff,
    between: Callable[[], None] | None = None,
) -> T:
    """``attempt()``, tried again up to ``retries`` times while it only timed out waiting for a lock (or
    lost a deadlock), pausing ``pause(tries)`` seconds between tries and then calling ``between()`` (whose
    own errors propagate); the last failure propagates. The attempt must have rolled back what it did (one
    transaction, or one statement string)."""
    from psycopg import errors

    tries = 0
    while True:
        try:
            return attempt()
        except (errors.LockNotAvailable, errors.DeadlockDetected):
            tries += 1
            if tries > retries:
                raise
        time.sleep(pause(tries))
        if between is not None:
            between()


def attach_partial(exc: BaseException, result: Any) -> None:
    """Let the job runner record what a failed step had already committed."""
    exc.memcli_partial_result = result  # type: ignore[attr-defined]


@contextmanager
def partial_on_failure(result: Any, started: float | None = None) -> Iterator[None]:
    """Attach ``result`` to whatever ends the block early, so the runner records what was committed;
    with ``started`` (a ``time.perf_counter()`` reading), time ``result.duration_seconds`` up to then."""
    try:
        yield
    except BaseException as exc:
        if started is not None:
            result.duration_seconds = time.perf_counter() - started
        attach_partial(exc, result)
        raise


def partial_result(exc: BaseException) -> Any:
    return getattr(exc, "memcli_partial_result", None)


def check_batch_size(value: Any) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"batch size must be a whole number, not {value!r}") from None
    if size < 1:
        raise ConfigError(f"batch size must be at least 1, not {size}")
    return size


def check_memory_type(value: str | None) -> str | None:
    if value is not None and value not in TIERS:
        raise ConfigError(f"unknown memory type {value!r}", hint=f"use one of: {', '.join(TIERS)}")
    return value
