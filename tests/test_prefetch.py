"""The producer thread of batch jobs: order kept, errors raised where they happened, stopped on exit."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcli.jobs.prefetch import prefetched


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
