"""The end of every command's ``--help``: notes, the exit codes (numbers from ``ExitCode``), then examples.

Commands pass ``epilog(...)`` to ``app.command(epilog=...)``; click prints it after the options, so each
``--help`` ends with examples one can copy. ``tests/test_docs.py`` holds every command to that.
"""

from __future__ import annotations

from collections.abc import Mapping

from memcli.errors import ExitCode

# Click rewraps paragraphs; one that starts with \b keeps its line breaks (a list of commands).
NO_REWRAP = "\b"


def exit_codes(meanings: Mapping[ExitCode, str]) -> str:
    """``Exit codes: 0 done; 2 bad option; ...`` in ``ExitCode`` order, for the codes this command uses."""
    return "Exit codes: " + "; ".join(f"{int(code)} {meanings[code]}" for code in sorted(meanings)) + "."


def epilog(*notes: str, examples: tuple[str, ...] | list[str]) -> str:
    """Notes (each a paragraph), then the examples, one command a line."""
    if not examples:
        raise ValueError("every command's help ends with at least one example")
    block = "\n".join([NO_REWRAP, "Examples:", *(f"  {line}" for line in examples)])
    return "\n\n".join([*notes, block])


# The meanings most commands share; a command picks those it can return and words them for itself.
USAGE = "bad option"
CONNECT = "cannot connect"
NOT_MIGRATED = "database not migrated"
