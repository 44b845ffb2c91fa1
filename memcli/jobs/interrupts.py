"""Stopping a job on a signal without losing track of what it committed.

A batch's commit and the bookkeeping of what it changed belong together: an interrupt that lands between
the two (or while the client waits for the server's answer to COMMIT) leaves rows changed in the database
but missing from the job's result and log. While ``stop_on_signals`` is active, SIGINT and SIGTERM raise
``KeyboardInterrupt`` at once, except inside ``deferred()``, where they are held until the block ends.
Without ``stop_on_signals`` (a library caller's own process) nothing changes: Python's defaults apply.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _State:
    depth = 0  # nesting of deferred() blocks
    pending: int | None = None  # the signal that arrived inside one


def _handler(signum: int, frame: Any) -> None:
    if _State.depth:
        _State.pending = signum
        return
    raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise a held one as ``KeyboardInterrupt``.

    A held signal is raised even when the block fails (the failure becomes its ``__context__``): the run
    stops where the signal found it, never one batch or retry later.
    """
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.depth == 0 and _State.pending is not None:
            _State.pending = None
            raise KeyboardInterrupt


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM (Ctrl-C, systemd stop, timeout, kill) both end the run as ``KeyboardInterrupt``."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        pass
    _State.pending = None
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.pending = None
