"""Results as JSON values: the one conversion behind every ``--json`` document and the maintenance log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from enum import Enum
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Any result (dataclasses, dicts, lists, datetimes, Decimals, UUIDs, paths, enums) as JSON values.

    The one conversion every ``--json`` uses: a result dataclass becomes an object of its fields.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value
