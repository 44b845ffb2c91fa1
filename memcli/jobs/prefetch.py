"""Run the reading and preparing side of a job ahead of its writing, in a thread or a process of its own.

A batch job spends much of its time waiting for the server (a COPY into indexed tables, a commit), and much
of the rest in Python reading and converting the next batch. Both helpers overlap the two: a producer
computes the next items while the caller writes the current one, so on two cores the job takes about the
longer of the two, not their sum.

- :func:`prefetched` runs the producer in a thread. The waits (socket I/O, numpy) release the GIL, but the
  consumer waits on the server once per statement, and each time it must take the GIL back from a producer
  busy in Python: a producer that is all Python slows the writes down.
- :func:`prefetched_in_process` runs it in a forked process, which holds no GIL of the consumer's: items
  travel pickled through a pipe, so they should be small (bytes ready to send, counts).

The producer must not share a connection with the consumer. Its errors are raised in the consumer, at the
item where they happened; when the consumer stops early (an error, an interrupt), the producer is stopped
and waited for, so nothing still uses its connection once the helper has returned.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from memcli.errors import MemcliError
from memcli.jobs.priority import enter_background_session

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

T = TypeVar("T")

_ITEM, _ERROR, _END = range(3)
_POLL_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


class ProducerLost(MemcliError):
    """The producer process ended without saying why (killed, out of memory). The job it served resumes
    when run again."""


def processes_available() -> bool:
    """Whether :func:`prefetched_in_process` can run here: it forks, which is safe on Linux only (macOS's
    system libraries are not fork-safe, Windows cannot fork)."""
    return sys.platform.startswith("linux")


def prefetched_in_process(
    produce: Callable[[], Iterable[T]], *, background: bool = False
) -> Generator[T, None, None]:
    """Yield, in order, the items of ``produce()``, called in a forked child process.

    ``produce`` must open what it reads from itself: the child lets go of every socket it inherits (each
    is replaced by /dev/null in the child), so the parent's connections stay the parent's alone, and a
    killed parent's sessions end with it, locks and all. The child is one item ahead: it prepares the next
    item while the caller works on the current one, then waits for the pipe. It ignores Ctrl-C (the caller
    stops it), and when the caller dies its next send fails and it ends.

    With ``background`` the child leaves for a session of its own at the lowest CPU weight
    (:func:`memcli.jobs.priority.enter_background_session`), for CPU-heavy work that must not slow a
    database server on the same machine. Signals sent to the caller's process group no longer reach it, so
    it is killed as soon as the calling thread dies: that thread must be the one that consumes the items.
    """
    import gc
    import multiprocessing  # here: the commands that never fork (status, list) do not pay for it

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_produce_into,
        args=(produce, sender, receiver, background, os.getpid()),
        name="memcli-prefetch",
        daemon=True,
    )
    # Objects alive now are left alone by the child's garbage collector: collecting one of the parent's
    # connections there would end it for the parent too.
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    sender.close()
    try:
        while True:
            try:
                kind, value = receiver.recv()
            except EOFError:
                child.join()
                raise ProducerLost(
                    f"the process preparing the batches ended unexpectedly (exit code {child.exitcode})",
                    hint="run the same command again: it resumes where it stopped",
                ) from None
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def _produce_into(
    produce: Callable[[], Iterable[Any]],
    sender: Connection,
    receiver: Connection,
    background: bool,
    parent: int,
) -> None:
    """The child's side: send every item, then the end or the error that stopped it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent acts
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's terminate() ends it, whatever handler it had
    receiver.close()  # else the pipe would never break when the parent dies
    _let_go_of_sockets()
    if background:
        _die_with(parent)
        enter_background_session()
    try:
        try:
            for item in produce():
                sender.send((_ITEM, item))
        except OSError as exc:
            if isinstance(exc, BrokenPipeError | ConnectionResetError):
                return  # the parent has gone
            sender.send((_ERROR, _sendable(exc)))
        except BaseException as exc:
            sender.send((_ERROR, _sendable(exc)))
        else:
            sender.send((_END, None))
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent has gone while hearing the end


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when ``parent`` (the thread that forked it) dies (Linux's
    PR_SET_PDEATHSIG). A child in a session of its own is reached by no signal sent to its parent's process
    group or terminal, and a parent killed outright runs no cleanup: the child would otherwise read and
    compute a whole batch, at the lowest priority, before its send fails."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: the next send still fails
        return
    if os.getppid() != parent:  # the parent died before the request
        os._exit(0)


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling both ways, else a MemcliError naming it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return MemcliError(f"preparing a batch failed: {type(exc).__name__}: {exc}")
    return exc


def _let_go_of_sockets() -> None:
    """Point every inherited socket of this (child) process at /dev/null.

    The parent's connections are open in the child too after a fork: the server would keep a killed
    parent's session (and its locks) while the child lives, and a stray write by the child's copy of a
    connection object (its finaliser says goodbye to the server) would reach the parent's session. The
    descriptors stay taken, so no connection the child opens later reuses their numbers.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{name}")
            except OSError:  # the listing's own descriptor, closed by now
                continue
            if target.startswith("socket:"):
                os.dup2(devnull, int(name))
    finally:
        os.close(devnull)
