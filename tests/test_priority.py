"""Background work steps back from a server on the same machine: its own session, the lowest CPU weight."""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memcli.jobs import priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sessions' weights are Linux's")


def in_child(check: Callable[[], str]) -> str:
    """``check()`` run in a forked child (a new session must never be this test process's), its result."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def run() -> None:
        sender.send(check())

    child = context.Process(target=run, daemon=True)
    child.start()
    try:
        assert receiver.poll(30), "the child did not answer"
        return receiver.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


def test_a_forked_worker_leaves_for_a_session_of_its_own_at_the_lowest_weight() -> None:
    session = os.getsid(0)
    group = priority.autogroup_niceness()

    def check() -> str:
        lowered = priority.enter_background_session()
        return f"{lowered} {os.getsid(0) == os.getpid() != session} {priority.autogroup_niceness()}"

    if priority.autogroups_on():
        assert in_child(check) == f"True True {priority.LOWEST_NICENESS}"
    else:  # no autogroups: a session of its own would gain nothing, and it stays in this one
        assert in_child(check) == f"False False {group}"
    assert (os.getsid(0), priority.autogroup_niceness()) == (session, group)


def test_the_weight_is_set_again_after_the_kernels_rate_limit(tmp_path: Path) -> None:
    """Without CAP_SYS_ADMIN Linux refuses a second autogroup change within 0.1 s (EAGAIN)."""
    written = tmp_path / "autogroup"

    def check() -> str:
        refusals = iter([True, True])

        def fake_open(path: str, mode: str = "r") -> io.TextIOWrapper:
            if next(refusals, False):
                raise BlockingIOError(11, "Resource temporarily unavailable")
            return open(written, mode)

        priority.open = fake_open  # type: ignore[attr-defined]
        priority.autogroups_on = lambda: True
        return f"{priority.enter_background_session()} {written.read_text()}"

    assert in_child(check) == f"True {priority.LOWEST_NICENESS}"


def test_a_worker_gives_up_on_a_kernel_that_keeps_refusing() -> None:
    def check() -> str:
        tries = []

        def fake_open(path: str, mode: str = "r") -> io.TextIOWrapper:
            tries.append(path)
            raise BlockingIOError(11, "Resource temporarily unavailable")

        priority.open = fake_open  # type: ignore[attr-defined]
        priority.autogroups_on = lambda: True
        priority.AUTOGROUP_WAIT_SECONDS = 0.0
        return f"{priority.enter_background_session()} {len(tries)}"

    assert in_child(check) == f"False {priority.AUTOGROUP_TRIES}"


def test_a_worker_refused_outright_stays_at_its_weight() -> None:
    def check() -> str:
        def fake_open(path: str, mode: str = "r") -> io.TextIOWrapper:
            raise PermissionError(13, "Permission denied")

        priority.open = fake_open  # type: ignore[attr-defined]
        priority.autogroups_on = lambda: True
        return str(priority.enter_background_session())

    assert in_child(check) == "False"
