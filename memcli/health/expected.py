"""The schema objects a migrated database must have, as the migrations at head create them.

Kept as plain data so health never imports SQLAlchemy or the models at run time (that import alone costs
about half a second, every run, and health runs from cron). tests/test_health_expected.py proves these lists
match memcli.schema.models, so a new table or index in the models without an entry here fails the tests.
Views, functions and triggers are not in the models; these are the migrations' names.
"""

from __future__ import annotations

# Memory and operating tables, always memcli's (created by revisions 0002 and 0003).
MEMCLI_TABLES: dict[str, tuple[str, ...]] = {
    "conversation_memory": (
        "idx_conversation_memory_session",
        "idx_conversation_memory_type",
        "idx_conversation_memory_expires",
        "idx_conversation_memory_importance",
        "idx_conversation_memory_user",
        "conversation_memory_session_id_context_key_key",
    ),
    "business_context_sections": (
        "idx_business_sections_business",
        "idx_business_sections_type",
        "idx_business_sections_active",
        "business_context_sections_business_id_section_type_section_key",
    ),
    "semantic_memory": (
        "idx_semantic_memory_session",
        "idx_semantic_memory_type",
        "idx_semantic_memory_user",
        "idx_semantic_memory_vector",
        "idx_semantic_memory_tsv",
    ),
    "memory_consolidation_log": ("idx_consolidation_log_session",),
    "context_relevance": (
        "idx_context_relevance_session",
        "idx_context_relevance_score",
        "context_relevance_session_id_context_type_context_key_key",
    ),
    "user_context_profiles": ("user_context_profiles_user_id_key",),
    "memory_settings": (),
    "system_maintenance_log": ("idx_system_maintenance_log_type_started",),
    "memcli_created_objects": (),
    "alembic_version": (),
}

# The application's core tables: each is expected with its indexes only where memcli created it (recorded
# in memcli_created_objects); an adopted table is the application's, as it is. businesses is always needed:
# the memory schema references it.
CORE_TABLES: dict[str, tuple[str, ...]] = {
    "businesses": ("idx_businesses_user_id", "idx_businesses_is_active", "idx_businesses_category"),
    "menu_categories": (),
    "menu_items": ("idx_menu_items_business_id", "idx_menu_items_category_id", "idx_menu_items_available"),
    "messages": ("idx_messages_session_id", "idx_messages_business_id", "idx_messages_created_at"),
    "orders": (),
    "order_items": (),
    "staff": (),
    "qr_codes": (),
    "tables": (),
    "working_hours": (),
    "profiles": (),
    "session_states": (),
    "Live Dining Board": (),
}
ALWAYS_EXPECTED_CORE = ("businesses",)

VIEWS = ("active_business_context", "session_memory_summary", "business_memory_overview")
FUNCTIONS = (
    "cleanup_expired_memory()",
    "consolidate_session_memories(text)",
    "consolidate_session_memories(text, interval)",
    "update_memory_access()",
    "set_memory_expiry()",
    "memory_retention(text)",
    "memcli_setting(text)",
    "memcli_current_user_id()",
    "create_memory_partition(date)",
    "memcli_create_partition(regclass, date)",
    "memcli_conversation_memory_unique()",
)
TRIGGERS = (
    ("conversation_memory", "trigger_memory_access"),
    ("conversation_memory", "trigger_memory_expiry"),
)
EXTENSIONS = ("vector",)
