"""One conversion of results to JSON: dataclasses, datetimes, Decimals, UUIDs, paths and enums."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from memcli.errors import ExitCode
from memcli.jobs.cleanup import CleanupOptions
from memcli.jsonable import to_jsonable


@dataclass
class Inner:
    at: dt.datetime
    amount: decimal.Decimal
    ids: tuple[uuid.UUID, ...]


@dataclass
class Outer:
    name: str
    inner: Inner
    by_key: dict[str, Inner] = field(default_factory=dict)
    code: ExitCode = ExitCode.OK
    where: Path | None = None
    took: dt.timedelta = dt.timedelta(seconds=1.5)


def test_nested_result_becomes_plain_json() -> None:
    moment = dt.datetime(2026, 5, 1, 14, 30, tzinfo=dt.UTC)
    one = uuid.UUID(int=1)
    inner = Inner(moment, decimal.Decimal("0.25"), (one,))
    value = Outer("x", inner, {"k": inner}, ExitCode.LOCKED, Path("/tmp/a"))
    document = json.loads(json.dumps(to_jsonable(value)))
    expected_inner = {"at": "2026-05-01T14:30:00+00:00", "amount": 0.25, "ids": [str(one)]}
    assert document == {
        "name": "x",
        "inner": expected_inner,
        "by_key": {"k": expected_inner},
        "code": 75,
        "where": "/tmp/a",
        "took": 1.5,
    }


def test_options_objects_are_json_too() -> None:
    document = to_jsonable(CleanupOptions(dry_run=True, older_than=dt.timedelta(days=30)))
    assert document["dry_run"] is True and document["older_than"] == 30 * 86400
    assert document["timeouts"]["lock_timeout_ms"] > 0
