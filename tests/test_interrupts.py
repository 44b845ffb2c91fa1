"""Signals during a maintenance batch: a batch is either rolled back or committed and counted."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from memcli.jobs.common import DEFAULT_TIMEOUTS, in_batch, own_transactions
from memcli.jobs.interrupts import deferred, stop_on_signals


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_outside_a_deferred_block_interrupts_at_once() -> None:
    reached = False
    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        _terminate_self()
        reached = True
    assert not reached


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends() -> None:
    reached = False
    with stop_on_signals(), pytest.raises(KeyboardInterrupt), deferred():
        _terminate_self()
        reached = True
    assert reached


def test_a_signal_held_while_the_block_fails_is_raised_as_it_ends() -> None:
    with stop_on_signals():
        with pytest.raises(KeyboardInterrupt) as raised, deferred():
            _terminate_self()
            raise RuntimeError("batch failed")
        assert isinstance(raised.value.__context__, RuntimeError)
        with deferred():  # nothing is left held for the next block
            pass


def test_the_previous_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def _rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM interrupt_probe").fetchone()[0]  # type: ignore[index]


@pytest.fixture
def probe_db(empty_db: str) -> str:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE interrupt_probe (n int)")
    return empty_db


def test_a_signal_between_commit_and_bookkeeping_waits_for_the_bookkeeping(probe_db: str) -> None:
    booked: list[int] = []

    def book(n: int) -> None:
        _terminate_self()  # lands after the commit, before the count is kept
        booked.append(n)

    with (
        psycopg.connect(probe_db) as conn,
        own_transactions(conn),
        stop_on_signals(),
        pytest.raises(KeyboardInterrupt),
    ):
        in_batch(
            conn,
            DEFAULT_TIMEOUTS,
            lambda: conn.execute("INSERT INTO interrupt_probe VALUES (1)").rowcount,
            book,
        )
    assert booked == [1]
    assert _rows(probe_db) == 1


def test_a_signal_during_the_work_rolls_the_batch_back(probe_db: str) -> None:
    booked: list[int] = []

    def work(conn: psycopg.Connection) -> int:
        n = conn.execute("INSERT INTO interrupt_probe VALUES (1)").rowcount
        _terminate_self()
        return n

    with (
        psycopg.connect(probe_db) as conn,
        own_transactions(conn),
        stop_on_signals(),
        pytest.raises(KeyboardInterrupt),
    ):
        in_batch(conn, DEFAULT_TIMEOUTS, lambda: work(conn), booked.append)
    assert booked == []
    assert _rows(probe_db) == 0
