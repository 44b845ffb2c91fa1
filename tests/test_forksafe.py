"""A lock held by another thread at a fork comes to the child unlocked."""

from __future__ import annotations

import multiprocessing
import sys
import threading

import pytest

from memcli.forksafe import ForkSafeLock


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_a_lock_held_by_another_thread_at_the_fork_is_free_in_the_child() -> None:
    lock = ForkSafeLock()
    plain = threading.Lock()
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock, plain:
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(30)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        with lock:  # waits forever if it came over held
            # the plain one stays held: the case the class is for
            sender.send(("taken", plain.acquire(timeout=0.2)))

    process = context.Process(target=child, daemon=True)
    try:
        process.start()
        assert receiver.poll(30), "the child waited for a lock held by a thread it does not have"
        assert receiver.recv() == ("taken", False)
        process.join(5)
    finally:
        if process.is_alive():
            process.kill()
        release.set()
        holder.join()
    with lock:  # and the parent's lock works as before
        pass
