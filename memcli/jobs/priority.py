"""Lower CPU priority for background work that shares a machine with the application's server.

A re-embed's encoder takes every core for minutes. On a machine that also runs the database server, the
application's searches must get a core first. Linux needs two things for that:

- A nice value. On Linux it belongs to a thread, not a process (``setpriority`` on the thread's id), so a
  worker thread can step back while the rest of its process keeps its priority:
  :func:`lower_thread_priority`.
- A session of its own. With autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``, on by
  default where the kernel has it), Linux first shares the cores between sessions, and only then between
  the threads of a session by their nice values. A server started as a service or by ``pg_ctl`` runs in a
  session of its own. A busy thread in memcli's session then still takes up to half of each contended core
  from it, whatever the thread's nice value (``SCHED_IDLE`` barely helps). A forked worker can leave for a
  new session and lower that session's weight (:func:`enter_background_session`); docs/reembed.md has the
  measurements (benchmarks/priority_bench.py).

Autogroups apply only to processes in the root CPU control group. Where the cores are shared by control
groups instead (a container, a systemd service with the cpu controller), neither reaches across: the
cgroups' CPU weights decide, and a worker stays in its caller's session.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

# Background work (a backfill's encoder) runs this much nicer than its caller.
BACKGROUND_NICENESS = 10
LOWEST_NICENESS = 19
AUTOGROUP = "/proc/self/autogroup"
AUTOGROUPS_ENABLED = "/proc/sys/kernel/sched_autogroup_enabled"
# Linux lets a process without CAP_SYS_ADMIN set an autogroup's nice value once per 0.1 s, machine-wide
# (EAGAIN otherwise): a backfill's next pass may come sooner.
AUTOGROUP_TRIES = 5
AUTOGROUP_WAIT_SECONDS = 0.11


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> None:
    """Make the calling thread ``niceness`` nicer; threads it starts inherit it. Elsewhere than Linux, or
    where it is not allowed, nothing changes."""
    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        lower = min(LOWEST_NICENESS, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
        os.setpriority(os.PRIO_PROCESS, tid, lower)


def autogroups_on() -> bool:
    """Whether Linux shares the cores between this process's session and others by autogroup."""
    try:
        with open(AUTOGROUPS_ENABLED) as enabled:
            return enabled.read().strip() == "1" and os.path.exists(AUTOGROUP)
    except OSError:
        return False


def enter_background_session() -> bool:
    """Move this process (a forked worker, never the caller's own process) to a new session, and give that
    session the lowest CPU weight. True when the session's weight was lowered; without autogroups (see the
    module's docstring) the process stays where it is.

    The new session has no controlling terminal: Ctrl-C and a terminal's hang-up no longer reach this
    process, so its parent must stop it, as :func:`memcli.jobs.prefetch.prefetched_in_process` does (and,
    should the parent die first, the kernel: the child asks for a signal on its parent's death).
    """
    if not sys.platform.startswith("linux") or not autogroups_on():
        return False
    try:
        os.setsid()
    except OSError:  # a process group leader cannot start a session
        return False
    for _ in range(AUTOGROUP_TRIES):
        try:
            with open(AUTOGROUP, "w") as autogroup:
                autogroup.write(str(LOWEST_NICENESS))
        except BlockingIOError:  # another process set one within the last 0.1 s
            time.sleep(AUTOGROUP_WAIT_SECONDS)
        except OSError:  # not allowed
            return False
        else:
            return True
    return False


def autogroup_niceness(pid: int | str = "self") -> int | None:
    """The nice value of a process's autogroup (``/autogroup-123 nice 19``), or None where there is none."""
    try:
        with open(f"/proc/{pid}/autogroup") as autogroup:
            return int(autogroup.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None
