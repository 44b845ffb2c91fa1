"""A lock that a forked child gets unlocked.

After ``fork()`` the child has only the forking thread. A plain lock that another thread held at that
moment stays held in the child forever. A re-embed's backfill embeds in a forked process, with the models
and encoders its parent already loaded, so their module locks must not come over locked.
"""

from __future__ import annotations

import os
import threading


class ForkSafeLock:
    """A ``threading.Lock`` for ``with`` blocks, replaced by a fresh one in a forked child.

    The fork must not happen inside a block that holds this lock: the child's thread would then release
    the fresh lock it never took.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> ForkSafeLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
