"""Schema checks: at the Alembic head, every expected object present, no invalid index."""

from __future__ import annotations

from typing import Any

from memcli.health.core import CheckResult, Context, Status, counted, health_check
from memcli.health.expected import expected_objects


def _revisions_from_files() -> dict[str, str | None] | None:
    """revision -> down_revision, read from the scripts without importing Alembic (which, with SQLAlchemy,
    costs about half a second per run); None if a script is not plain."""
    import ast

    from memcli.migrations import script_location

    downs: dict[str, str | None] = {}
    for path in sorted((script_location() / "versions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        values: dict[str, object] = {}
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            value = getattr(node, "value", None)
            if (
                isinstance(target, ast.Name)
                and target.id in ("revision", "down_revision")
                and value is not None
            ):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        if "revision" not in values:
            continue
        revision, down = values["revision"], values.get("down_revision")
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            return None  # merge revisions (tuples) and the like: let Alembic resolve them
        downs[revision] = down
    return downs


def revision_chain() -> list[str]:
    """The revisions from base to head, in order."""
    downs = _revisions_from_files()
    if downs is not None:
        children = {down: rev for rev, down in downs.items()}
        heads = [rev for rev in downs if rev not in children]
        if len(heads) == 1 and len(children) == len(downs):
            chain, current = [], children.get(None)
            while current is not None:
                chain.append(current)
                current = children.get(current)
            if len(chain) == len(downs):
                return chain
    script = _script_directory()
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _script_directory() -> Any:
    from alembic.script import ScriptDirectory

    from memcli.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config())


@health_check("schema")
def schema_revision(ctx: Context) -> CheckResult:
    """Database at the Alembic head revision.

    Fix: run: memcli migrate.
    """
    chain = revision_chain()
    head = chain[-1]
    threshold = f"= head {head}"
    if not ctx.has_table("alembic_version"):
        return CheckResult(
            Status.FAIL,
            threshold=threshold,
            message="no alembic_version table: the memory tables were not created by memcli migrate",
            hint="run: memcli migrate (it adopts existing tables) or stamp the revision the schema matches",
            details={"head": head, "current": None},
        )
    from psycopg import sql

    query = sql.SQL("SELECT version_num FROM {}").format(ctx.table("alembic_version"))
    current_rows = [r["version_num"] for r in ctx.rows(query)]
    current = current_rows[0] if len(current_rows) == 1 else None
    details: dict[str, Any] = {"head": head, "current": current}
    if len(current_rows) > 1:
        return CheckResult(
            Status.FAIL,
            threshold=threshold,
            message=f"alembic_version holds {len(current_rows)} revisions "
            f"({', '.join(current_rows)}): branched",
            hint="stamp the one revision the schema is at: alembic stamp <revision>",
            details={**details, "current": current_rows},
        )
    hint = None
    if current is not None and current not in chain:
        status = Status.WARN
        message = f"database at revision {current}, which this memcli does not know (newer memcli?)"
        hint = "upgrade memcli to the version that migrated this database"
    else:
        pending = chain[chain.index(current) + 1 :] if current is not None else chain
        details["pending"] = pending
        status = Status.FAIL if pending else Status.OK
        message = (
            f"{len(pending)} pending revision{'s' if len(pending) != 1 else ''}: {', '.join(pending)}"
            + ("" if current else " (alembic_version is empty)")
            if pending
            else f"at head {head}"
        )
    verdict = CheckResult(status, value=current, unit="revision", threshold=threshold, message=message)
    verdict.hint, verdict.details = hint, details
    return verdict


@health_check("schema")
def schema_objects(ctx: Context) -> CheckResult:
    """Every expected table, index, view, function and trigger present.

    Fix: run: memcli migrate; recreate a dropped index with the definition in alembic/versions.
    """
    want = expected_objects(ctx)
    relations = ctx.relations()
    missing: dict[str, list[str]] = {
        "tables": [t for t in want.tables if relations.get(t) not in ("r", "p")],
        "indexes": [i for i in want.indexes if relations.get(i) not in ("i", "I")],
        "views": [v for v in want.views if relations.get(v) not in ("v", "m")],
    }
    present_functions = {
        r["signature"]
        for r in ctx.rows(
            """
            SELECT p.oid::regprocedure::text AS signature FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s
            """,
            (ctx.schema,),
        )
    }
    # regprocedure text is schema-qualified only when the schema is not on the search path.
    normalised = {sig.split(".", 1)[-1].replace('"', "").replace(" ", "") for sig in present_functions}
    missing["functions"] = [f for f in want.functions if f.replace(" ", "") not in normalised]
    triggers = {
        (r["relname"], r["tgname"])
        for r in ctx.rows(
            """
            SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal
            """,
            (ctx.schema,),
        )
    }
    missing["triggers"] = [
        f"{table}.{name}" for table, name in want.triggers if (table, name) not in triggers
    ]
    installed = {r["extname"] for r in ctx.rows("SELECT extname FROM pg_extension")}
    missing["extensions"] = [e for e in want.extensions if e not in installed]
    missing = {kind: names for kind, names in missing.items() if names}
    total = sum(len(v) for v in missing.values())
    expected = (
        len(want.tables)
        + len(want.indexes)
        + len(want.views)
        + len(want.functions)
        + len(want.triggers)
        + len(want.extensions)
    )
    details: dict[str, Any] = {"missing": missing, "expected": expected}
    listing = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in missing.items())
    return counted(
        total,
        threshold="0 missing",
        message=f"{total} missing — {listing}" if total else f"all {expected} expected objects present",
        details=details,
        bad=Status.FAIL,
    )


@health_check("schema")
def invalid_indexes(ctx: Context) -> CheckResult:
    """No invalid indexes (left by failed CREATE/REINDEX CONCURRENTLY).

    Fix: DROP INDEX CONCURRENTLY the invalid index, then create it again (or REINDEX INDEX CONCURRENTLY).
    """
    rows = ctx.rows(
        """
        SELECT n.nspname AS schema, c.relname AS index, t.relname AS table, i.indisready AS ready,
               pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        ORDER BY n.nspname, c.relname
        """
    )
    # An index being built right now by CREATE INDEX CONCURRENTLY is also invalid until it finishes.
    building = {
        r["relid"]
        for r in ctx.rows("SELECT relid::regclass::text AS relid FROM pg_stat_progress_create_index")
    }
    details: dict[str, Any] = {"indexes": rows, "tables_being_indexed": sorted(building)}
    if rows:
        expected = expected_objects(ctx).indexes if ctx.has_table("conversation_memory") else {}
        ours = [r["index"] for r in rows if r["schema"] == ctx.schema and r["index"] in expected]
        names = ", ".join(f"{r['index']} on {r['table']}" for r in rows)
        status = Status.FAIL if ours else Status.WARN
        message = f"{len(rows)} invalid: {names}"
        if ours:
            message += " (memcli's own: queries do not use it)"
        if building:
            message += f"; a concurrent build is running on {', '.join(sorted(building))}"
    else:
        status, message = Status.OK, "no invalid index"
    return CheckResult(status, value=len(rows), unit="count", threshold="0", message=message, details=details)
