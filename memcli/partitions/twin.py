"""A table's twin in the other layout, and the swap that puts it in the original's place.

The twin is built from the catalog, not from a fixed definition, so it follows whatever later revisions
added to the table: columns, defaults, CHECK and NOT NULL constraints, identity, generated columns (``LIKE
... INCLUDING ...``), indexes, triggers, row-level security and its policies, grants, owner and comment.
What differs between the layouts is only the keys (see ``PartitionSpec``):

- plain: ``PRIMARY KEY (id)`` and the unique constraints;
- partitioned: a unique index must contain the partition key. Where the key is NOT NULL the primary key
  becomes ``(id, key)``; where it may be NULL (a memory that never expires) ``id`` gets a plain index. The
  unique constraints become an index plus a trigger that serialises writers of the same value and raises
  the constraint's own unique violation.

Index and constraint names of the twin carry ``__twin`` until the swap renames them, so both tables live
side by side while a conversion copies rows.

``swap`` runs in the caller's transaction, which has locked the original: it re-creates what depends on the
original (views, other tables' policies that read it) against the twin, drops the original and renames the
twin and its partitions, indexes and identity sequence to the original's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from memcli.partitions.layout import (
    DEFAULT_SUFFIX,
    OLD_SUFFIX,
    RELEASE_FUNCTION,
    RELEASE_TRIGGER,
    TWIN_SUFFIX,
    UNIQUE_FUNCTION,
    UNIQUE_TRIGGER,
    PartitionSpec,
    layout_index_name,
)

if TYPE_CHECKING:
    import psycopg


def _ident(*parts: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*parts)


def _sql(text: str) -> Any:
    from psycopg import sql

    return sql.SQL(text)  # type: ignore[arg-type]


def _oid(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT to_regclass(%s)::oid", (name,)).fetchone()
    if row is None or row[0] is None:
        raise LookupError(f"table {name} does not exist")
    return int(row[0])


def grant_statements(conn: psycopg.Connection, source_oid: int, target: Any) -> list[Any]:
    """GRANTs giving ``target`` (a composed name) the privileges ``source`` has, owner's excluded."""
    from psycopg import sql

    rows = conn.execute(
        """
        SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
               a.is_grantable
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = %s AND a.grantee <> c.relowner
        """,
        (source_oid,),
    ).fetchall()
    statements = []
    for privilege, grantee, grantable in rows:
        statements.append(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),
                target,
                _ident(grantee) if grantee else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )
    return statements


def policy_statements(
    conn: psycopg.Connection, table_oid: int, target: Any, only: str | None = None
) -> list[Any]:
    """CREATE POLICY statements giving ``target`` (a composed name) the policies of ``table_oid``."""
    from psycopg import sql

    rows = conn.execute(
        """
        SELECT p.polname, p.polpermissive, p.polcmd,
               CASE WHEN p.polroles = '{0}' THEN NULL
                    ELSE ARRAY(SELECT pg_get_userbyid(r) FROM unnest(p.polroles) r) END,
               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
        FROM pg_policy p WHERE p.polrelid = %s AND (%s::name IS NULL OR p.polname = %s::name)
        ORDER BY p.polname
        """,
        (table_oid, only, only),
    ).fetchall()
    commands = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    statements = []
    for name, permissive, cmd, roles, qual, check in rows:
        parts = [
            sql.SQL("CREATE POLICY {} ON {} AS {} FOR {} TO {}").format(
                _ident(name),
                target,
                sql.SQL("PERMISSIVE" if permissive else "RESTRICTIVE"),
                sql.SQL(commands[cmd]),
                sql.SQL(", ").join(_ident(r) for r in roles) if roles else sql.SQL("PUBLIC"),
            )
        ]
        if qual:
            parts.append(sql.SQL("USING ({})").format(_sql(qual)))
        if check:
            parts.append(sql.SQL("WITH CHECK ({})").format(_sql(check)))
        statements.append(sql.SQL(" ").join(parts))
    return statements


def build_twin(
    conn: psycopg.Connection, spec: PartitionSpec, *, partitioned: bool, months: list[date] = ()
) -> None:
    """Create ``spec.twin``: the table in the other layout, empty (with ``months`` of partitions)."""
    from psycopg import sql

    source, twin = spec.table, spec.twin
    source_oid = _oid(conn, source)
    key = _sql(spec.key_expression) if spec.key_expression else _ident(spec.key)
    layout = sql.SQL(" PARTITION BY RANGE ({})").format(key) if partitioned else sql.SQL("")
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED "
            "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS "
            "INCLUDING STATISTICS){}"
        ).format(_ident(twin), _ident(source), layout)
    )

    # Keys: what each layout can enforce.
    key_columns: list[tuple[str, ...]] = [spec.primary_key, *(cols for _, cols in spec.unique)]
    if not partitioned:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                _ident(twin),
                _ident(f"{source}_pkey{TWIN_SUFFIX}"),
                sql.SQL(", ").join(map(_ident, spec.primary_key)),
            )
        )
        for name, cols in spec.unique:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
                    _ident(twin), _ident(name + TWIN_SUFFIX), sql.SQL(", ").join(map(_ident, cols))
                )
            )
    else:
        if not spec.key_nullable:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                    _ident(twin),
                    _ident(f"{source}_pkey{TWIN_SUFFIX}"),
                    sql.SQL(", ").join(map(_ident, (*spec.primary_key, spec.key))),
                )
            )
        else:
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    _ident(layout_index_name(source, spec.primary_key) + TWIN_SUFFIX),
                    _ident(twin),
                    sql.SQL(", ").join(map(_ident, spec.primary_key)),
                )
            )
        for _, cols in spec.unique:
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    _ident(layout_index_name(source, cols) + TWIN_SUFFIX),
                    _ident(twin),
                    sql.SQL(", ").join(map(_ident, cols)),
                )
            )

    # The other indexes, as the source defines them (those behind constraints, and the partitioned
    # layout's stand-ins for keys, are the layout's own: made above).
    for name, definition, columns in conn.execute(
        """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid),
               ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n)
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = %s
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY ic.relname
        """,
        (source_oid,),
    ).fetchall():
        if i_is_layout_index(tuple(columns), key_columns, spec.key):
            continue
        match = re.search(r" USING (.*)$", definition)
        if match is None:  # pragma: no cover - pg_get_indexdef always names the method
            raise RuntimeError(f"cannot read the definition of index {name}")
        unique = definition.startswith("CREATE UNIQUE") and (not partitioned or spec.key in columns)
        conn.execute(
            sql.SQL("CREATE {}INDEX {} ON {} USING {}").format(
                sql.SQL("UNIQUE " if unique else ""),
                _ident(name + TWIN_SUFFIX),
                _ident(twin),
                _sql(match.group(1)),
            )
        )

    # Triggers (not the layout's own, not an online conversion's capture trigger).
    qualified = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I', c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        (source_oid,),
    ).fetchone()
    assert qualified is not None
    from memcli.partitions.layout import CAPTURE_TRIGGER

    for name, definition in conn.execute(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal "
        "ORDER BY tgname",
        (source_oid,),
    ).fetchall():
        if name in (UNIQUE_TRIGGER, RELEASE_TRIGGER) or name.startswith(CAPTURE_TRIGGER):
            continue
        for form in qualified:
            marker = f" ON {form} "
            if marker in definition:
                conn.execute(_sql(definition.replace(marker, f' ON "{twin}" ', 1)))
                break
        else:  # pragma: no cover - pg_get_triggerdef names the table in one of the two forms
            raise RuntimeError(f"cannot read the definition of trigger {name}")
    if partitioned and spec.unique:
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}"
            ).format(_ident(UNIQUE_TRIGGER), _ident(twin), _sql(UNIQUE_FUNCTION))
        )
        # Not before revision 0011 (a first migration builds the layout in 0010; 0011 adds it then).
        if conn.execute("SELECT to_regprocedure(%s)", (RELEASE_FUNCTION,)).fetchone()[0] is not None:  # type: ignore[index]
            conn.execute(
                sql.SQL("CREATE TRIGGER {} BEFORE DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}").format(
                    _ident(RELEASE_TRIGGER), _ident(twin), _sql(RELEASE_FUNCTION)
                )
            )

    # Row-level security, policies, grants, owner, comment.
    flags = conn.execute(
        "SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner), "
        "obj_description(oid, 'pg_class') FROM pg_class WHERE oid = %s",
        (source_oid,),
    ).fetchone()
    assert flags is not None
    rls, force, owner, comment = flags
    if rls:
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(_ident(twin)))
    if force:
        conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(_ident(twin)))
    for statement in [
        *policy_statements(conn, source_oid, _ident(twin)),
        *grant_statements(conn, source_oid, _ident(twin)),
    ]:
        conn.execute(statement)
    if comment is not None:
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_ident(twin), sql.Literal(comment)))
    current = conn.execute("SELECT current_user").fetchone()
    if current is not None and owner != current[0]:
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(_ident(twin), _ident(owner)))

    if partitioned:
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                _ident(twin + DEFAULT_SUFFIX), _ident(twin)
            )
        )
        for month in months:
            conn.execute("SELECT memcli_create_partition(%s::regclass, %s)", (twin, month))
        # The partitions take their final names now (free while the original is plain), so the swap has
        # fewer renames to do under its lock.
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            (twin,),
        ).fetchall():
            final = source + name[len(twin) :]
            if conn.execute("SELECT to_regclass(%s)", (final,)).fetchone()[0] is not None:  # type: ignore[index]
                continue
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(name), _ident(final)))
            for (index,) in conn.execute(
                "SELECT ic.relname FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(%s) AND ic.relname LIKE %s",
                (final, twin.replace("_", r"\_") + "%"),
            ).fetchall():
                conn.execute(
                    sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                        _ident(index), _ident((source + index[len(twin) :])[:63])
                    )
                )


def i_is_layout_index(columns: tuple[str, ...], key_columns: list[tuple[str, ...]], key: str) -> bool:
    """An index standing in for a key: on exactly the key's columns (with or without the partition key)."""
    return any(columns in (cols, (*cols, key)) for cols in key_columns)


@dataclass
class _View:
    name: str
    definition: str
    options: list[str] | None
    owner: str
    comment: str | None
    grants: list[Any]


def _dependent_views(conn: psycopg.Connection, oid: int) -> list[_View]:
    """Views reading the table, directly or through other views, in the order they can be re-created."""
    rows = conn.execute(
        """
        WITH RECURSIVE deps(oid, depth) AS (
            SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = %(oid)s AND r.ev_class <> %(oid)s
            UNION
            SELECT r.ev_class, deps.depth + 1 FROM deps
              JOIN pg_depend d ON d.refobjid = deps.oid AND d.classid = 'pg_rewrite'::regclass
                               AND d.refclassid = 'pg_class'::regclass
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE r.ev_class <> deps.oid AND deps.depth < 20
        )
        SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), c.relkind, pg_get_viewdef(c.oid),
               c.reloptions, pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'),
               max(deps.depth)
        FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname
        ORDER BY max(deps.depth), c.relname
        """,
        {"oid": oid},
    ).fetchall()
    views = []
    for view_oid, name, kind, definition, options, owner, comment, _ in rows:
        if kind != "v":
            raise RuntimeError(f"materialized view {name} reads the table: drop it, convert, re-create it")
        views.append(
            _View(name, definition, options, owner, comment, grant_statements(conn, view_oid, _sql(name)))
        )
    return views


def _foreign_policies(conn: psycopg.Connection, oid: int) -> list[tuple[int, str, str]]:
    """Policies of other tables whose expressions read the table: (table oid, table, policy)."""
    rows = conn.execute(
        """
        SELECT DISTINCT p.polrelid, format('%%I.%%I', n.nspname, c.relname), p.polname
        FROM pg_depend d JOIN pg_policy p ON p.oid = d.objid
        JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE d.classid = 'pg_policy'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = %s AND p.polrelid <> %s
        """,
        (oid, oid),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def swap_statements(conn: psycopg.Connection, spec: PartitionSpec, keep_original: bool = False) -> list[Any]:
    """The statements that put ``spec.twin`` in the place of ``spec.table``, read from the catalog now.

    ``keep_original`` (a plain original only): rename it and its indexes and sequences aside to
    ``spec.old`` instead of dropping it, so the commit does not unlink its files while the lock is held;
    the caller drops it afterwards.

    Nothing is changed yet: the caller runs them in one transaction that has locked the original, as one
    batch (``run_batch``), so the lock is held for the server's work and not for client round trips.
    Reading the catalog beforehand is safe under the ``partitions`` job lock, which keeps memcli's own
    DDL away; the values that move on (the identity sequence) are read by the statements themselves.
    """
    from psycopg import sql

    table, twin = spec.table, spec.twin
    oid, twin_oid = _oid(conn, table), _oid(conn, twin)
    out: list[Any] = []

    # Identity columns continue where the original's sequence stands when the lock is held.
    for (column,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attidentity <> '' AND NOT attisdropped",
        (oid,),
    ).fetchall():
        out.append(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({twin}, {col}), greatest(s.last_value, 1), "
                "s.last_value IS NOT NULL) FROM pg_sequences s "
                "WHERE format('%I.%I', s.schemaname, s.sequencename)::regclass "
                "= pg_get_serial_sequence({table}, {col})::regclass"
            ).format(twin=sql.Literal(twin), table=sql.Literal(table), col=sql.Literal(column))
        )

    views = _dependent_views(conn, oid)
    policies: list[Any] = []
    for policy_table_oid, policy_table, policy in _foreign_policies(conn, oid):
        for statement in policy_statements(conn, policy_table_oid, _sql(policy_table), policy):
            policies.append((policy_table, policy, statement))
    # Re-created below from text captured now, while the names still mean the original.
    for policy_table, policy, _ in policies:
        out.append(sql.SQL("DROP POLICY {} ON {}").format(_ident(policy), _sql(policy_table)))
    for view in reversed(views):
        out.append(sql.SQL("DROP VIEW {}").format(_sql(view.name)))
    if keep_original:
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = %s "
            "UNION ALL SELECT pg_get_serial_sequence(%s, attname) FROM pg_attribute "
            "WHERE attrelid = %s AND attidentity <> '' AND NOT attisdropped",
            (oid, table, oid),
        ).fetchall():
            short = name.rsplit(".", 1)[-1].strip('"')
            out.append(
                sql.SQL("ALTER {} {} RENAME TO {}").format(
                    sql.SQL("INDEX" if "." not in name else "SEQUENCE"),
                    _ident(name) if "." not in name else _sql(name),
                    _ident(short[: 63 - len(OLD_SUFFIX)] + OLD_SUFFIX),
                )
            )
        out.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(table), _ident(spec.old)))
    else:
        out.append(sql.SQL("DROP TABLE {}").format(_ident(table)))

    out.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(twin), _ident(table)))
    for (name,) in conn.execute(
        "SELECT relname FROM pg_class WHERE oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %s) "
        "AND relname LIKE %s",
        (twin_oid, "%" + TWIN_SUFFIX),
    ).fetchall():
        out.append(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(_ident(name), _ident(name[: -len(TWIN_SUFFIX)]))
        )
    for (name,) in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s AND c.relname LIKE %s",
        (twin_oid, twin.replace("_", r"\_") + "%"),
    ).fetchall():
        out.append(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(name), _ident(table + name[len(twin) :]))
        )
    for (sequence,) in conn.execute(
        "SELECT pg_get_serial_sequence(%s, attname) FROM pg_attribute "
        "WHERE attrelid = %s AND attidentity <> '' AND NOT attisdropped",
        (twin, twin_oid),
    ).fetchall():
        short = sequence.rsplit(".", 1)[-1].strip('"')
        if short.startswith(twin):
            out.append(
                sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
                    _sql(sequence),
                    _ident(table + short[len(twin) :]),
                )
            )

    for view in views:
        options = (
            sql.SQL(" WITH ({})").format(sql.SQL(", ").join(map(_sql, view.options)))
            if view.options
            else sql.SQL("")
        )
        out.append(sql.SQL("CREATE VIEW {}{} AS {}").format(_sql(view.name), options, _sql(view.definition)))
        out.extend(view.grants)
        if view.comment is not None:
            out.append(sql.SQL("COMMENT ON VIEW {} IS {}").format(_sql(view.name), sql.Literal(view.comment)))
        out.append(sql.SQL("ALTER VIEW {} OWNER TO {}").format(_sql(view.name), _ident(view.owner)))
    out.extend(statement for _, _, statement in policies)
    return out


def run_batch(conn: psycopg.Connection, statements: list[Any]) -> None:
    """Run the statements in one round trip (the simple query protocol: no parameters, one string)."""
    if statements:
        conn.execute(";\n".join(s.as_string(conn) for s in statements).encode())


def swap(conn: psycopg.Connection, spec: PartitionSpec) -> None:
    """Put ``spec.twin`` in the place of ``spec.table`` (in the caller's transaction, original locked)."""
    run_batch(conn, swap_statements(conn, spec))
