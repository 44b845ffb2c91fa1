"""``memcli health``: is the memory database healthy, why not, and what to do.

Checks are grouped (server, schema, hygiene, operations, internals, vector); each returns a status
(ok / warn / fail / skip), the value it measured, the threshold it judged by and a one-line hint. The whole
run is read-only (one READ ONLY transaction, rolled back).
"""

from memcli.health.core import (
    GROUPS,
    REGISTRY,
    Check,
    CheckResult,
    CheckSkipped,
    Context,
    HealthReport,
    Status,
    _load_checks,
    register,
    resolve_names,
    run_checks,
)
from memcli.health.thresholds import THRESHOLDS, Threshold, Thresholds, load_thresholds

_load_checks()  # registers every check, so REGISTRY is complete once memcli.health is imported

__all__ = [
    "GROUPS",
    "REGISTRY",
    "THRESHOLDS",
    "Check",
    "CheckResult",
    "CheckSkipped",
    "Context",
    "HealthReport",
    "Status",
    "Threshold",
    "Thresholds",
    "load_thresholds",
    "register",
    "resolve_names",
    "run_checks",
]
