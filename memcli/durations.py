"""Durations on the command line: ``30d``, ``12h``, ``10m``, ``90s``, ``2w``, ``500ms``, or ``1h30m``.

A bare number is refused: ``--older-than 5`` could mean days or seconds, and guessing wrong deletes data.
"""

from __future__ import annotations

import re
from datetime import timedelta

from memcli.errors import ConfigError

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[wdhms])", re.IGNORECASE)
_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|[wdhms]))+\s*$", re.IGNORECASE)

DURATION_HELP = "a duration such as 30d, 12h, 10m, 90s or 1h30m"
# Longer than any retention or search window means a typo; it would also overflow dates.
MAX_DURATION = timedelta(days=100 * 366)


class DurationTooLongError(ConfigError):
    """A well-formed duration beyond :data:`MAX_DURATION`."""


def parse_duration(text: str, option: str | None = None) -> timedelta:
    """``"30d"`` -> ``timedelta(days=30)``; ConfigError (exit 2) for anything else."""
    where = f"{option} " if option else ""
    value = (text or "").strip()
    if not value or not _WHOLE.match(value):
        hint = f"add a unit: {value}d" if value.replace(".", "", 1).isdigit() else f"use {DURATION_HELP}"
        raise ConfigError(f"invalid duration {where}{text!r}", hint=hint)
    seconds = sum(float(amount) * _UNITS[unit.lower()] for amount, unit in _PART.findall(value))
    if seconds > MAX_DURATION.total_seconds():
        raise DurationTooLongError(
            f"duration {where}{text!r} is longer than 100 years", hint=f"use {DURATION_HELP}"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float | None) -> str:
    """A short human form: ``5d``, ``1h30m``, ``90ms``; ``-`` for None."""
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
