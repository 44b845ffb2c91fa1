"""Run the reading and preparing side of a job ahead of its writing, in a thread of its own.

A batch job spends much of its time waiting for the server (a COPY into indexed tables, a commit), and much
of the rest in Python reading and converting the next batch. :func:`prefetched` overlaps the two: a
producer thread computes up to ``depth`` items ahead while the caller writes the current one. The waits
(socket I/O, numpy) release the GIL, so on two cores the job takes about the longer of the two, not their
sum.

The producer must not share a connection with the consumer. Its errors are raised in the consumer, at the
item where they happened; when the consumer stops early (an error, an interrupt), the producer is told to
stop and is waited for, so nothing still uses its connection once :func:`prefetched` has returned.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = range(3)
_POLL_SECONDS = 0.1


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Yield ``items`` in order, computed by a producer thread up to ``depth`` items ahead."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    ready: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[int, object]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not offer((_ITEM, item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer((_ERROR, exc))
            return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator stopped early releases what it holds, in this thread
        offer((_END, None))

    thread = threading.Thread(target=produce, name="memcli-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
