"""The schema objects a migrated database must have, as the migrations at head create them.

Kept as plain data so health never imports SQLAlchemy or the models at run time (that import alone costs
about half a second, every run, and health runs from cron). The table, view, function and trigger names come
from memcli.schema.names; this module adds the indexes each table must have, and
tests/test_health_expected.py proves them equal to the models' (so a new index in the models without an
entry here fails the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memcli.schema import names

if TYPE_CHECKING:
    from memcli.health.core import Context

# Indexes (and unique constraints) of the tables that are always memcli's.
_MEMCLI_INDEXES: dict[str, tuple[str, ...]] = {
    names.CONVERSATION_MEMORY: (
        "idx_conversation_memory_session",
        "idx_conversation_memory_type",
        "idx_conversation_memory_expires",
        "idx_conversation_memory_importance",
        "idx_conversation_memory_user",
        "conversation_memory_session_id_context_key_key",
    ),
    names.BUSINESS_CONTEXT_SECTIONS: (
        "idx_business_sections_business",
        "idx_business_sections_type",
        "idx_business_sections_active",
        "business_context_sections_business_id_section_type_section_key",
    ),
    names.SEMANTIC_MEMORY: (
        "idx_semantic_memory_session",
        "idx_semantic_memory_type",
        "idx_semantic_memory_user",
        "idx_semantic_memory_vector",
        "idx_semantic_memory_tsv",
    ),
    names.CONSOLIDATION_LOG: ("idx_consolidation_log_session",),
    names.CONTEXT_RELEVANCE: (
        "idx_context_relevance_session",
        "idx_context_relevance_score",
        "context_relevance_session_id_context_type_context_key_key",
    ),
    names.USER_CONTEXT_PROFILES: ("user_context_profiles_user_id_key",),
    names.MAINTENANCE_LOG: ("idx_system_maintenance_log_type_started",),
    names.IMPORTS: ("idx_memory_imports_source",),
    names.IMPORT_KEYS: ("idx_memory_import_keys_import",),
    names.AUDIT_LOG: ("idx_memcli_audit_log_user", "idx_memcli_audit_log_occurred"),
    names.ERASURE_RECEIPTS: ("idx_memcli_erasure_receipts_status",),
}

MEMCLI_TABLES: dict[str, tuple[str, ...]] = {t: _MEMCLI_INDEXES.get(t, ()) for t in names.MEMCLI_TABLES}

# Indexes of the application's core tables, expected only where memcli created the table (recorded in
# memcli_created_objects); an adopted table is the application's, as it is.
_CORE_INDEXES: dict[str, tuple[str, ...]] = {
    names.BUSINESSES: ("idx_businesses_user_id", "idx_businesses_is_active", "idx_businesses_category"),
    "menu_items": ("idx_menu_items_business_id", "idx_menu_items_category_id", "idx_menu_items_available"),
    "messages": ("idx_messages_session_id", "idx_messages_business_id", "idx_messages_created_at"),
}
CORE_TABLES: dict[str, tuple[str, ...]] = {t: _CORE_INDEXES.get(t, ()) for t in names.CORE_TABLES}
ALWAYS_EXPECTED_CORE = names.ALWAYS_EXPECTED_CORE

VIEWS = names.VIEWS
FUNCTIONS = names.FUNCTIONS
TRIGGERS = names.TRIGGERS
EXTENSIONS = names.EXTENSIONS


@dataclass
class Expected:
    tables: list[str] = field(default_factory=list)
    indexes: dict[str, str] = field(default_factory=dict)  # index name -> table
    views: tuple[str, ...] = VIEWS
    functions: tuple[str, ...] = FUNCTIONS
    triggers: tuple[tuple[str, str], ...] = TRIGGERS
    extensions: tuple[str, ...] = EXTENSIONS


def expected_objects(ctx: Context) -> Expected:
    """memcli's own tables and indexes, plus the application's core tables that memcli created.

    An application's own tables are adopted as they are (memcli adds no index to them), so their indexes are
    not expected; the tables memcli created are listed in memcli_created_objects.
    """

    def compute() -> Expected:
        from psycopg import sql

        created: set[str] = set()
        if ctx.has_table(names.CREATED_OBJECTS):
            query = sql.SQL("SELECT object_name FROM {} WHERE object_type = 'table'").format(
                ctx.table(names.CREATED_OBJECTS)
            )
            created = {r["object_name"] for r in ctx.rows(query)}
        from memcli.partitions.layout import layout_indexes, layout_triggers

        result = Expected()
        relations = ctx.relations()
        partitioned = [t for t in MEMCLI_TABLES if relations.get(t) == "p"]
        for table, indexes in MEMCLI_TABLES.items():
            result.tables.append(table)
            # a partitioned table has the layout's stand-ins for the keys it cannot enforce by index
            result.indexes.update(dict.fromkeys(layout_indexes(table, indexes, table in partitioned), table))
        result.triggers = (*result.triggers, *layout_triggers(partitioned))
        for table, indexes in CORE_TABLES.items():
            if table in created or table in ALWAYS_EXPECTED_CORE:
                result.tables.append(table)
            if table in created:
                result.indexes.update(dict.fromkeys(indexes, table))
        return result

    return ctx.memo("expected", compute)
