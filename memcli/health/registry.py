"""Every health check, collected from the modules that declare them, and the selection of checks to run.

The check modules import ``core`` for what they are made of; this module imports them and gathers their
``@health_check`` declarations, so nothing registers itself as a side effect of being imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from memcli.errors import ConfigError
from memcli.health import (
    checks_hygiene,
    checks_internals,
    checks_operations,
    checks_partitions,
    checks_people,
    checks_schema,
    checks_server,
    checks_vector,
)
from memcli.health.core import GROUPS, Check

# Within a group, checks keep the order of this tuple and then of their module.
CHECK_MODULES = (
    checks_server,
    checks_schema,
    checks_hygiene,
    checks_operations,
    checks_partitions,
    checks_internals,
    checks_vector,
    checks_people,
)


def collect(modules: Iterable[ModuleType]) -> dict[str, Check]:
    """The checks the modules declare, by name, in report order (group, then declaration order)."""
    found: list[Check] = []
    for module in modules:
        for value in vars(module).values():
            # A module-level check, or a tuple of checks made in a loop; one a module merely imports
            # is declared elsewhere, so it counts where its function lives.
            found += [
                check
                for check in (value if isinstance(value, tuple) else (value,))
                if isinstance(check, Check) and check.function.__module__ == module.__name__
            ]
    checks: dict[str, Check] = {}
    for check in sorted(found, key=lambda c: GROUPS.index(c.group)):  # stable: keeps declaration order
        if check.name in checks:
            raise ValueError(f"check {check.name!r} declared twice")
        checks[check.name] = check
    return checks


REGISTRY: dict[str, Check] = collect(CHECK_MODULES)


def resolve_names(names: Iterable[str] | None, deep: bool = False) -> list[str]:
    """Check names to run, in report order; a group name selects its checks. ConfigError if unknown."""
    if not names:
        return [check.name for check in REGISTRY.values() if deep or not check.deep]
    wanted: set[str] = set()
    unknown: list[str] = []
    for name in names:
        key = name.strip().lower().replace("-", "_")
        if key in REGISTRY:
            wanted.add(key)
        elif key in GROUPS:
            wanted.update(n for n, c in REGISTRY.items() if c.group == key and (deep or not c.deep))
        else:
            unknown.append(name)
    if unknown:
        raise ConfigError(
            f"unknown health check {', '.join(unknown)}",
            hint=f"choose from the groups {', '.join(GROUPS)} or: {', '.join(REGISTRY)}",
        )
    return [name for name in REGISTRY if name in wanted]
