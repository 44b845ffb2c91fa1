"""The names of the schema memcli manages, and its defaults: the one place each is written.

Plain data with no imports, so any module (health, readiness, the jobs, the Alembic environment) can read it
without loading SQLAlchemy. The models, the expected-objects lists of ``health``, the jobs and the tests all
derive from these tuples; a landed migration keeps the names it was written with (it is history), and a
test proves it agrees with this module.
"""

from __future__ import annotations

# --- tables ------------------------------------------------------------------------------------------

CONVERSATION_MEMORY = "conversation_memory"
BUSINESS_CONTEXT_SECTIONS = "business_context_sections"
SEMANTIC_MEMORY = "semantic_memory"
CONSOLIDATION_LOG = "memory_consolidation_log"
CONTEXT_RELEVANCE = "context_relevance"
USER_CONTEXT_PROFILES = "user_context_profiles"

# The six memory tables (created by revision 0002), in the order the documents list them.
MEMORY_TABLES: tuple[str, ...] = (
    CONVERSATION_MEMORY,
    BUSINESS_CONTEXT_SECTIONS,
    SEMANTIC_MEMORY,
    CONSOLIDATION_LOG,
    CONTEXT_RELEVANCE,
    USER_CONTEXT_PROFILES,
)

SETTINGS_TABLE = "memory_settings"
MAINTENANCE_LOG = "system_maintenance_log"
CREATED_OBJECTS = "memcli_created_objects"  # what memcli created rather than adopted
ALEMBIC_VERSION = "alembic_version"
IMPORTS = "memory_imports"  # one row per memcli import (revision 0007)
IMPORT_KEYS = "memory_import_keys"  # source row -> the rows an import wrote for it
# The partitioned conversation_memory's (session_id, context_key) -> id, its unique index (revision 0011)
MEMORY_KEYS = "conversation_memory_keys"
# Searches' access records while a vector index is built concurrently, folded afterwards (revision 0013)
ACCESS_LOG = "semantic_memory_access"

# People's data (revision 0005): the audit trail, erasure receipts (and the scope of one in progress),
# sessions closed by memcli.
AUDIT_LOG = "memcli_audit_log"
ERASURE_RECEIPTS = "memcli_erasure_receipts"
ERASURE_SCOPE = "memcli_erasure_scope"
SESSION_CLOSURES = "memcli_session_closures"
PEOPLE_TABLES: tuple[str, ...] = (AUDIT_LOG, ERASURE_RECEIPTS, ERASURE_SCOPE, SESSION_CLOSURES)

# Tables memcli's jobs cannot run without: the memory tables, the settings and the maintenance log.
REQUIRED_TABLES: tuple[str, ...] = (*MEMORY_TABLES, SETTINGS_TABLE, MAINTENANCE_LOG)
# Every table that is always memcli's, whatever the database held before.
MEMCLI_TABLES: tuple[str, ...] = (
    *REQUIRED_TABLES,
    *PEOPLE_TABLES,
    CREATED_OBJECTS,
    IMPORTS,
    IMPORT_KEYS,
    MEMORY_KEYS,
    ACCESS_LOG,
    ALEMBIC_VERSION,
)

# The application's 13 core business tables (revision 0001 creates the missing ones, adopts the rest).
BUSINESSES = "businesses"
CORE_TABLES: tuple[str, ...] = (
    BUSINESSES,
    "menu_items",
    "menu_categories",
    "messages",
    "orders",
    "order_items",
    "staff",
    "qr_codes",
    "tables",
    "working_hours",
    "profiles",
    "session_states",
    "Live Dining Board",
)
# Expected even when adopted: the memory schema references it.
ALWAYS_EXPECTED_CORE: tuple[str, ...] = (BUSINESSES,)

# --- the schema's enumerations (the CHECK constraints of revision 0002) ---------------------------------

EXPIRING_TIERS: tuple[str, ...] = ("short_term", "long_term", "archived")  # each has a retention setting
MEMORY_TYPES: tuple[str, ...] = (*EXPIRING_TIERS, "semantic")  # conversation_memory.memory_type
CONTENT_TYPES: tuple[str, ...] = ("conversation", "business_info", "user_preference")  # semantic_memory
SECTION_TYPES: tuple[str, ...] = ("menu", "services", "hours", "location", "policies", "overview")
CONSOLIDATION_TYPES: tuple[str, ...] = ("merge", "summarize", "archive", "forget")
MAINTENANCE_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed", "skipped")

# --- other objects -----------------------------------------------------------------------------------

VIEWS: tuple[str, ...] = ("active_business_context", "session_memory_summary", "business_memory_overview")
FUNCTIONS: tuple[str, ...] = (
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
    "memcli_conversation_memory_release()",
    "memcli_lock_memory_key(text, text)",
    "memcli_memory_expiry(timestamp with time zone, timestamp with time zone, text)",
)
TRIGGERS: tuple[tuple[str, str], ...] = (
    (CONVERSATION_MEMORY, "trigger_memory_access"),
    (CONVERSATION_MEMORY, "trigger_memory_expiry"),
)
EXTENSIONS: tuple[str, ...] = ("vector",)
RLS_POLICY = "memcli_user_access"  # row-level security: a user's own rows
MONITOR_POLICY = "memcli_monitor_read"  # pg_monitor members read settings and the maintenance log

# --- defaults ----------------------------------------------------------------------------------------

# The local model all-MiniLM-L6-v2 writes 384-dimensional vectors; the dimension is chosen at the first
# migration and recorded in memory_settings as "embedding.dimension".
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_EMBEDDING_DIMENSION = 384
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
# HNSW indexes on pgvector's `vector` type support at most 2000 dimensions.
MAX_EMBEDDING_DIMENSION = 2000
# The types semantic_memory.embedding_vector may have: `vector` (4-byte floats) or `halfvec` (2-byte floats,
# half the table and index; docs/vector-index.md says when it serves). Chosen at the first migration
# (--vector-type), changed online by `memcli vectors convert`, recorded as "embedding.vector_type".
VECTOR_TYPES: tuple[str, ...] = ("vector", "halfvec")
DEFAULT_VECTOR_TYPE = "vector"

# The HNSW index on semantic_memory.embedding_vector and the parameters new builds use (measured in
# benchmarks/vector_bench.py, docs/vector-index.md): 24 links a node and a build list of 128 hold recall@10
# above 0.95 at 1M clustered vectors, where pgvector's 16 / 64 stall near 0.85.
VECTOR_INDEX = "idx_semantic_memory_vector"
HNSW_M = 24
HNSW_EF_CONSTRUCTION = 128

# Rows per transaction of the jobs that rewrite or erase rows beside the application: a re-embed's or a
# vector conversion's backfill (staged by one COPY, so the commit costs little per row), and an erasure.
SHADOW_BATCH_SIZE = 1000
ERASURE_BATCH_SIZE = 2000
DELETE_BATCH_SIZE = 1000  # memcli memories delete
# Source rows per transaction of an import: its rows are new (nobody waits for their locks), and each
# batch costs a dozen round trips whatever its size (benchmarks/import_bench.py --batch-size).
IMPORT_BATCH_SIZE = 1000
MAX_IMPORT_BATCH_SIZE = 50_000
