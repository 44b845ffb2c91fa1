"""Asking before destroying people's data: on a terminal ask, elsewhere refuse unless ``--yes``."""

from __future__ import annotations

import sys

import typer

from memcli.errors import ConfigError


def confirm_destructive(question: str, *, yes: bool, what: str) -> None:
    """Return when the operator agreed (or passed ``--yes``); exit 2 off a terminal without ``--yes``.

    ``what`` names the command for the hint, e.g. ``memcli users forget USER``.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{question.rstrip('?')}: refused without --yes when not on a terminal",
            hint=f"{what} --yes (or --dry-run to see what would go)",
        )
    typer.confirm(question, abort=True, err=True)
