"""Errors the library raises, each carrying the exit code the CLI maps it to.

The library never exits: it raises one of these with a one-line message and, where there is one, a hint
saying what to do. The CLI prints both on stderr and exits with ``exit_code``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PROBLEMS = 1  # health FAIL (or WARN with --strict, or a check that could not run), a job partly failed
    USAGE = 2  # bad usage or configuration
    CONNECT = 3  # cannot connect or authenticate
    NOT_READY = 4  # database not ready: pgvector missing, schema not migrated, embedding mismatch
    LOCKED = 75  # another run holds the job's lock (EX_TEMPFAIL: cron may retry)
    INTERRUPTED = 130  # stopped by SIGINT or SIGTERM (128 + SIGINT, the shell's convention for Ctrl-C)


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.PROBLEMS: "problems found (health FAIL, WARN with --strict, or a check that could not run; "
    "a job step failed)",
    ExitCode.USAGE: "usage or config error",
    ExitCode.CONNECT: "cannot connect or authenticate",
    ExitCode.NOT_READY: "database not ready (pgvector missing, not migrated, embedding mismatch)",
    ExitCode.LOCKED: "another run holds the lock (retry later)",
    ExitCode.INTERRUPTED: "interrupted by SIGINT or SIGTERM (committed work stays; the run stops where the "
    "signal found it)",
}


class MemcliError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` what to do about it."""

    exit_code: int = ExitCode.PROBLEMS

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(MemcliError):
    exit_code = ExitCode.USAGE


class ConnectError(MemcliError):
    exit_code = ExitCode.CONNECT


class NotReadyError(MemcliError):
    exit_code = ExitCode.NOT_READY


class LockedError(MemcliError):
    exit_code = ExitCode.LOCKED


class JobFailedError(MemcliError):
    exit_code = ExitCode.PROBLEMS


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its class name when it has none), for one-line reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class NotFoundError(MemcliError):
    """What was asked for does not exist (a memory, a user, a session): exit 1."""

    exit_code = ExitCode.PROBLEMS
