"""The producer of batch jobs, thread or process: order kept, errors raised where they happened, stopped
on exit; a forked producer holds none of its parent's connections."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcli.errors import MemcliError
from memcli.jobs import priority
from memcli.jobs.prefetch import ProducerLost, prefetched, prefetched_in_process, processes_available


@given(st.lists(st.integers()), st.integers(min_value=1, max_value=4))
def test_yields_every_item_in_order(items: list[int], depth: int) -> None:
    assert list(prefetched(iter(items), depth)) == items


def test_producer_error_is_raised_after_the_items_before_it() -> None:
    def items():
        yield 1
        yield 2
        raise ValueError("bad row")

    seen = []
    with pytest.raises(ValueError, match="bad row"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_runs_in_another_thread_and_stops_when_the_consumer_stops() -> None:
    threads: set[str] = set()
    closed = threading.Event()

    def items():
        try:
            n = 0
            while True:
                threads.add(threading.current_thread().name)
                yield n
                n += 1
        finally:
            closed.set()

    with pytest.raises(KeyboardInterrupt):
        for item in prefetched(items(), depth=2):
            if item == 5:
                raise KeyboardInterrupt
    # the generator was closed by the producer thread before prefetched returned: nothing still runs it
    assert closed.is_set()
    assert threading.current_thread().name not in threads
    assert not any(t.name == "memcli-prefetch" and t.is_alive() for t in threading.enumerate())


# ------------------------------------------------------------------------------------- in a forked process

needs_fork = pytest.mark.skipif(not processes_available(), reason="the reader process is forked (Linux)")


@needs_fork
@settings(max_examples=15, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.binary(max_size=200_000), st.text())))
def test_a_process_yields_every_item_in_order(items: list[object]) -> None:
    # items as large as a batch's COPY data do not fit in the pipe at once: the child waits, nothing is lost
    assert list(prefetched_in_process(lambda: iter(items))) == items


@needs_fork
def test_a_process_runs_apart_and_its_error_is_raised_after_the_items_before_it() -> None:
    def items():
        yield os.getpid()
        yield 2
        raise ValueError("bad row")

    seen = []
    with pytest.raises(ValueError, match="bad row"):
        for item in prefetched_in_process(items):
            seen.append(item)
    assert seen[0] != os.getpid() and seen[1:] == [2]


@needs_fork
def test_an_error_that_cannot_travel_is_named() -> None:
    class Local(Exception):  # defined in a function: pickle cannot find it again
        pass

    def items():
        yield 1
        raise Local("lost in transit")

    with pytest.raises(MemcliError, match="Local: lost in transit"):
        list(prefetched_in_process(items))


@needs_fork
def test_a_process_that_dies_is_reported_not_waited_for() -> None:
    def items():
        yield 1
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2

    with pytest.raises(ProducerLost, match="exit code -9"):
        list(prefetched_in_process(items))


@needs_fork
def test_a_consumer_that_stops_early_ends_the_process() -> None:
    pids = []

    def items():
        n = 0
        while True:
            yield os.getpid(), n
            n += 1

    with pytest.raises(KeyboardInterrupt):
        for pid, n in prefetched_in_process(items):
            pids.append(pid)
            if n == 3:
                raise KeyboardInterrupt
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # ended and waited for
    assert not multiprocessing.active_children()


KILLED_PARENT = """
import os, signal, sys, time
import psycopg
from memcli.jobs.prefetch import prefetched_in_process

conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("SELECT pg_advisory_lock(4242)")

def items():
    yield os.getpid()
    time.sleep(60)  # still alive when its parent is killed
    yield 0

for child in prefetched_in_process(items):
    with open(sys.argv[2], "w") as out:
        out.write(str(child))
    os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_fork
def test_a_killed_parents_session_ends_while_its_reader_process_lives(empty_db: str, tmp_path) -> None:
    """The child lets go of the sockets it inherits: the killed parent's session, and the lock it held,
    end at once, not when the child next speaks."""
    written = tmp_path / "child.pid"
    # no pipes: the child would hold them open (it inherits the parent's standard streams)
    parent = subprocess.run(
        [sys.executable, "-c", KILLED_PARENT, empty_db, str(written)], stdin=subprocess.DEVNULL, timeout=60
    )
    assert parent.returncode == -signal.SIGKILL
    child = int(written.read_text())
    try:
        os.kill(child, 0)  # the child is still alive, asleep
        with psycopg.connect(empty_db, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while not conn.execute("SELECT pg_try_advisory_lock(4242)").fetchone()[0]:
                assert time.monotonic() < deadline, "the killed parent's session outlived it"
                time.sleep(0.05)
    finally:
        os.kill(child, signal.SIGKILL)


KILLED_BACKGROUND_PARENT = """
import os, signal, sys, time
from memcli.jobs.prefetch import prefetched_in_process

def items():
    yield os.getpid(), os.getsid(0)
    time.sleep(60)  # computing the next batch when its parent is killed
    yield 0, 0

for child, session in prefetched_in_process(items, background=True):
    with open(sys.argv[1], "w") as out:
        out.write(f"{child} {session} {os.getsid(0)}")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    """Running, or stopped: not gone and not a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@needs_fork
def test_a_background_producer_dies_with_its_killed_parent(tmp_path) -> None:
    """In a session of its own no signal to its parent's group reaches it, and a parent killed outright
    stops nothing: the kernel ends it, rather than the 60 s its batch would take."""
    written = tmp_path / "child"
    parent = subprocess.run(
        [sys.executable, "-c", KILLED_BACKGROUND_PARENT, str(written)], stdin=subprocess.DEVNULL, timeout=60
    )
    assert parent.returncode == -signal.SIGKILL
    child, child_session, parent_session = map(int, written.read_text().split())
    try:
        if priority.autogroups_on():
            assert child_session != parent_session
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the background producer outlived its parent"
            time.sleep(0.05)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
