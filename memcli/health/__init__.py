"""``memcli health``: is the memory database healthy, why not, and what to do.

Checks are grouped (server, schema, hygiene, operations, internals, vector); each returns a status
(ok / warn / fail / skip), the value it measured, the threshold it judged by and a one-line hint. The whole
run is read-only (one READ ONLY transaction, rolled back).
"""

from memcli.health.core import (
    GROUPS,
    Check,
    CheckResult,
    CheckSkipped,
    Context,
    HealthReport,
    Status,
    health_check,
)
from memcli.health.registry import REGISTRY, resolve_names
from memcli.health.runner import run_checks
from memcli.health.thresholds import THRESHOLDS, Threshold, Thresholds, load_thresholds

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
    "health_check",
    "load_thresholds",
    "resolve_names",
    "run_checks",
]
