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

    child = context.Process(target=run)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    return receiver.recv()


def test_a_forked_worker_leaves_for_a_session_of_its_own_at_the_lowest_weight() -> None:
    session = os.getsid(0)
    group = priority.autogroup_niceness()

    def check() -> str:
        lowered = priority.enter_background_session()
        return f"{lowered} {os.getsid(0) == os.getpid() != session} {priority.autogroup_niceness()}"

    if group is None:  # a kernel without autogroup: the session changes, there is no weight to set
        assert in_child(check) == "False True None"
    else:
        assert in_child(check) == f"True True {priority.LOWEST_NICENESS}"
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
        return f"{priority.enter_background_session()} {written.read_text()}"

    assert in_child(check) == f"True {priority.LOWEST_NICENESS}"


def test_a_worker_gives_up_on_a_kernel_that_keeps_refusing(tmp_path: Path) -> None:
    def check() -> str:
        def fake_open(path: str, mode: str = "r") -> io.TextIOWrapper:
            raise PermissionError(13, "Permission denied")

        priority.open = fake_open  # type: ignore[attr-defined]
        return str(priority.enter_background_session())

    assert in_child(check) == "False"
