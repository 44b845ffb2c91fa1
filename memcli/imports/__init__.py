"""Bringing memories in from other stores: four legacy layouts and JSON Lines (docs/imports.md).

``memcli.imports.engine`` does the work (plan, batched COPY, key map, resume, rollback); one module per
source layout says what its rows become. ``LAYOUTS`` is the one list of layouts the CLI offers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcli.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

    from memcli.imports.database import Layout
    from memcli.imports.engine import Source

JSONL = "jsonl"
# layout name -> (module, class)
LAYOUTS: dict[str, tuple[str, str]] = {
    "mumble": ("memcli.imports.mumble", "Mumble"),
    "ybryx": ("memcli.imports.ybryx", "Ybryx"),
    "agent-memories": ("memcli.imports.agent_memories", "AgentMemories"),
    "graive": ("memcli.imports.graive", "Graive"),
}
SOURCES = (*LAYOUTS, JSONL)


def layout(name: str) -> Layout:
    import importlib

    if name not in LAYOUTS:
        raise ConfigError(f"unknown source layout {name!r}", hint=f"one of {', '.join(SOURCES)}")
    module, cls = LAYOUTS[name]
    return getattr(importlib.import_module(module), cls)()


def open_source(
    name: str,
    *,
    conn: psycopg.Connection | None = None,
    schema: str = "public",
    path: Path | None = None,
    label: str = "",
) -> Source:
    """The source to import from: ``jsonl`` reads ``path``; a layout reads ``schema`` through ``conn``
    (checked against the layout at once: ConfigError, exit 2, naming a missing or mistyped column)."""
    if name == JSONL:
        from memcli.imports.jsonl import JsonLinesSource

        if path is None:
            raise ConfigError("the jsonl source needs a file", hint="memcli import jsonl FILE")
        return JsonLinesSource(path, label)
    chosen = layout(name)
    if conn is None:
        raise ConfigError(f"the {name} source needs a database connection")
    from memcli.imports.database import DatabaseSource

    return DatabaseSource(chosen, conn, schema, label)
