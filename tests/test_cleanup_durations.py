"""Duration options (--older-than, --max-runtime, --lock-timeout): what they accept and refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memcli.durations import format_duration, parse_duration
from memcli.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("10m", timedelta(minutes=10)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1.5d ", timedelta(hours=36)),
        ("0s", timedelta(0)),
        ("5D", timedelta(days=5)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "-3d", "3 days", "d", "3x", "1h30"])
def test_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "--older-than")
    assert caught.value.exit_code == 2
    assert "--older-than" in caught.value.message


def test_bare_number_hint() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration("30")
    assert caught.value.hint == "add a unit: 30d"


def test_format() -> None:
    assert format_duration(timedelta(days=5)) == "5d"
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(0.09) == "90ms"
    assert format_duration(12.34) == "12.3s"
    assert format_duration(None) == "-"
