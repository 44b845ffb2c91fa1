"""SQLAlchemy 2 models of the schema the migrations create.

The core business tables are modelled as memcli creates them on an empty database; an application's own
tables may differ (they are adopted as they are), so code reading them must tolerate missing optional
columns. ``semantic_memory.embedding_vector`` is modelled with the default dimension (384); a database
migrated with another dimension records it in ``memory_settings``.

Not expressible here (and not compared with the database): views, functions, triggers, CHECK constraint
bodies beyond their presence, row-level security policies.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, TIMESTAMP, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from memcli.schema import names

EMBEDDING_DIMENSION = names.DEFAULT_EMBEDDING_DIMENSION

TZ = TIMESTAMP(timezone=True)
NOW = text("now()")
UUID_PK = {"primary_key": True, "server_default": text("gen_random_uuid()")}


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, uuid.UUID: UUID(as_uuid=True), dt.datetime: TZ}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), **UUID_PK)


def _created() -> Mapped[dt.datetime | None]:
    return mapped_column(TZ, server_default=NOW)


# --- core business tables (the application's; created by memcli only when absent) -------------------


class Business(Base):
    __tablename__ = "businesses"
    __table_args__ = (
        Index("idx_businesses_user_id", "user_id"),
        Index("idx_businesses_is_active", "is_active"),
        Index("idx_businesses_category", "category"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    slug: Mapped[str | None] = mapped_column(Text, server_default=text("''::text"))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    category_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    subscription_plan: Mapped[str | None] = mapped_column(Text)
    subscription_status: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    trial_ends_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    phone_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    custom_phone_number: Mapped[str | None] = mapped_column(Text)
    custom_whatsapp_number: Mapped[str | None] = mapped_column(Text)
    custom_phone_sid: Mapped[str | None] = mapped_column(Text)
    phone_features: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    phone_usage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    custom_number_monthly_cost: Mapped[Decimal | None] = mapped_column(Numeric)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    branding_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    contact_info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    email: Mapped[str | None] = mapped_column(String)
    owner_name: Mapped[str | None] = mapped_column(String)
    phone: Mapped[str | None] = mapped_column(String)
    website_url: Mapped[str | None] = mapped_column(String)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class MenuCategory(Base):
    __tablename__ = "menu_categories"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class MenuItem(Base):
    __tablename__ = "menu_items"
    __table_args__ = (
        Index("idx_menu_items_business_id", "business_id"),
        Index("idx_menu_items_category_id", "category_id"),
        Index("idx_menu_items_available", "is_available"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("menu_categories.id"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric)
    image_url: Mapped[str | None] = mapped_column(Text)
    is_available: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    sort_order: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("idx_messages_session_id", "session_id"),
        Index("idx_messages_business_id", "business_id"),
        Index("idx_messages_created_at", text("created_at DESC")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id"))
    created_at: Mapped[dt.datetime | None] = _created()
    chat_context: Mapped[str | None] = mapped_column(Text, server_default=text("'global'::text"))
    sender_type: Mapped[str | None] = mapped_column(Text, server_default=text("'global'::text"))


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text, server_default=text("'pending'::text"))
    total_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[uuid.UUID] = _uuid_pk()
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    menu_item_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("menu_items.id"))
    quantity: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime | None] = _created()


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class DiningTable(Base):
    __tablename__ = "tables"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(Text, server_default=text("'available'::text"))
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class QrCode(Base):
    __tablename__ = "qr_codes"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    table_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tables.id", ondelete="SET NULL"))
    code: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime | None] = _created()


class WorkingHours(Base):
    __tablename__ = "working_hours"
    __table_args__ = (CheckConstraint("day_of_week BETWEEN 0 AND 6", name="ck_working_hours_day_of_week"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    day_of_week: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 = Monday .. 6 = Sunday
    open_time: Mapped[dt.time | None] = mapped_column(Time)
    close_time: Mapped[dt.time | None] = mapped_column(Time)
    is_closed: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    full_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    avatar_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class SessionState(Base):
    __tablename__ = "session_states"

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str | None] = mapped_column(Text)
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


class LiveDiningBoard(Base):
    __tablename__ = "Live Dining Board"

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    table_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tables.id", ondelete="SET NULL"))
    status: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime | None] = _created()
    updated_at: Mapped[dt.datetime | None] = _created()


CORE_TABLES = names.CORE_TABLES

# --- memory system -----------------------------------------------------------------------------------

MEMORY_TYPES = names.MEMORY_TYPES
SECTION_TYPES = names.SECTION_TYPES
CONTENT_TYPES = names.CONTENT_TYPES
CONSOLIDATION_TYPES = names.CONSOLIDATION_TYPES
MAINTENANCE_STATUSES = names.MAINTENANCE_STATUSES


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ConversationMemory(Base):
    __tablename__ = names.CONVERSATION_MEMORY
    __table_args__ = (
        UniqueConstraint("session_id", "context_key", name="conversation_memory_session_id_context_key_key"),
        CheckConstraint(_in("memory_type", MEMORY_TYPES), name="ck_conversation_memory_memory_type"),
        CheckConstraint(
            "importance_score >= 0 AND importance_score <= 1", name="ck_conversation_memory_importance_score"
        ),
        CheckConstraint("access_count >= 0", name="ck_conversation_memory_access_count"),
        Index("idx_conversation_memory_session", "session_id"),
        Index("idx_conversation_memory_type", "memory_type"),
        Index("idx_conversation_memory_expires", "expires_at"),
        Index("idx_conversation_memory_importance", text("importance_score DESC")),
        Index("idx_conversation_memory_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    memory_type: Mapped[str] = mapped_column(Text, nullable=False)
    context_key: Mapped[str] = mapped_column(Text, nullable=False)
    context_value: Mapped[Any | None] = mapped_column(JSONB)
    importance_score: Mapped[float | None] = mapped_column(REAL, server_default=text("0.5"))
    access_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    last_accessed_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    created_at: Mapped[dt.datetime | None] = _created()
    # no default: the BEFORE INSERT trigger sets created_at + the tier's retention from memory_settings
    expires_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class BusinessContextSection(Base):
    __tablename__ = names.BUSINESS_CONTEXT_SECTIONS
    __table_args__ = (
        UniqueConstraint(
            "business_id",
            "section_type",
            "section_name",
            name="business_context_sections_business_id_section_type_section_key",
        ),
        CheckConstraint(_in("section_type", SECTION_TYPES), name="ck_business_context_sections_section_type"),
        Index("idx_business_sections_business", "business_id"),
        Index("idx_business_sections_type", "section_type"),
        Index("idx_business_sections_active", "is_active"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    section_type: Mapped[str] = mapped_column(Text, nullable=False)
    section_name: Mapped[str] = mapped_column(Text, nullable=False)
    section_content: Mapped[Any | None] = mapped_column(JSONB)
    section_order: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    last_updated: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    created_at: Mapped[dt.datetime | None] = _created()
    source_hash: Mapped[str | None] = mapped_column(Text)  # hash of the source rows, for seed --refresh


class SemanticMemory(Base):
    __tablename__ = names.SEMANTIC_MEMORY
    __table_args__ = (
        CheckConstraint(_in("content_type", CONTENT_TYPES), name="ck_semantic_memory_content_type"),
        CheckConstraint(
            "relevance_score >= 0 AND relevance_score <= 1", name="ck_semantic_memory_relevance_score"
        ),
        CheckConstraint("access_count >= 0", name="ck_semantic_memory_access_count"),
        Index("idx_semantic_memory_session", "session_id"),
        Index("idx_semantic_memory_type", "content_type"),
        Index("idx_semantic_memory_user", "user_id"),
        Index(
            names.VECTOR_INDEX,
            "embedding_vector",
            postgresql_using="hnsw",
            postgresql_ops={"embedding_vector": "vector_cosine_ops"},
            postgresql_with={"m": names.HNSW_M, "ef_construction": names.HNSW_EF_CONSTRUCTION},
        ),
        Index("idx_semantic_memory_tsv", "content_tsv", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    content_text: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_vector: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIMENSION))
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)
    relevance_score: Mapped[float | None] = mapped_column(REAL, server_default=text("0.5"))
    created_at: Mapped[dt.datetime | None] = _created()
    embedding_model: Mapped[str | None] = mapped_column(Text)
    access_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    last_accessed_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    content_tsv: Mapped[Any | None] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, content_text)", persisted=True)
    )


class MemoryConsolidationLog(Base):
    __tablename__ = names.CONSOLIDATION_LOG
    __table_args__ = (
        CheckConstraint(
            _in("consolidation_type", CONSOLIDATION_TYPES),
            name="ck_memory_consolidation_log_consolidation_type",
        ),
        Index("idx_consolidation_log_session", "session_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    consolidation_type: Mapped[str] = mapped_column(Text, nullable=False)
    old_memory_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    new_memory_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    consolidation_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime | None] = _created()
    details: Mapped[Any | None] = mapped_column(JSONB)


class ContextRelevance(Base):
    __tablename__ = names.CONTEXT_RELEVANCE
    __table_args__ = (
        UniqueConstraint(
            "session_id",
            "context_type",
            "context_key",
            name="context_relevance_session_id_context_type_context_key_key",
        ),
        CheckConstraint(
            "relevance_score >= 0 AND relevance_score <= 1", name="ck_context_relevance_relevance_score"
        ),
        CheckConstraint("decay_factor >= 0 AND decay_factor <= 1", name="ck_context_relevance_decay_factor"),
        Index("idx_context_relevance_session", "session_id"),
        Index("idx_context_relevance_score", text("relevance_score DESC")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    context_type: Mapped[str] = mapped_column(Text, nullable=False)
    context_key: Mapped[str] = mapped_column(Text, nullable=False)
    relevance_score: Mapped[float | None] = mapped_column(REAL, server_default=text("0.5"))
    decay_factor: Mapped[float | None] = mapped_column(REAL, server_default=text("0.95"))
    last_calculated: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    created_at: Mapped[dt.datetime | None] = _created()


class UserContextProfile(Base):
    __tablename__ = names.USER_CONTEXT_PROFILES

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    profile_data: Mapped[Any | None] = mapped_column(JSONB)
    preferences: Mapped[Any | None] = mapped_column(JSONB)
    behavior_patterns: Mapped[Any | None] = mapped_column(JSONB)
    context_history: Mapped[Any | None] = mapped_column(JSONB)
    last_updated: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    created_at: Mapped[dt.datetime | None] = _created()


MEMORY_TABLES = names.MEMORY_TABLES

# --- operating tables --------------------------------------------------------------------------------


class MemorySetting(Base):
    __tablename__ = names.SETTINGS_TABLE

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)


class SystemMaintenanceLog(Base):
    __tablename__ = names.MAINTENANCE_LOG
    __table_args__ = (
        CheckConstraint(_in("status", MAINTENANCE_STATUSES), name="ck_system_maintenance_log_status"),
        Index("idx_system_maintenance_log_type_started", "maintenance_type", text("started_at DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    maintenance_type: Mapped[str] = mapped_column(Text, nullable=False)
    step: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    duration_seconds: Mapped[float | None] = mapped_column(Double)
    records_processed: Mapped[int | None] = mapped_column(BigInteger, server_default=text("0"))
    status: Mapped[str] = mapped_column(Text, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[Any | None] = mapped_column(JSONB)


AUDIT_TARGETS = ("user", "session", "memory")
ERASURE_SUBJECTS = ("user", "session")
ERASURE_STATUSES = ("running", "completed", "failed")


class AuditLog(Base):
    """One row per memcli operation on a user's data: what, who, when, how many rows; never the content."""

    __tablename__ = "memcli_audit_log"
    __table_args__ = (
        CheckConstraint(_in("target", AUDIT_TARGETS), name="ck_memcli_audit_log_target"),
        Index("idx_memcli_audit_log_user", "user_id"),
        Index("idx_memcli_audit_log_occurred", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    occurred_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    db_role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("SESSION_USER"))
    os_user: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_digest: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class ErasureReceipt(Base):
    """Proof that a user's or session's data was erased: counts per table, the subject only as a digest."""

    __tablename__ = "memcli_erasure_receipts"
    __table_args__ = (
        CheckConstraint(
            _in("subject_kind", ERASURE_SUBJECTS), name="ck_memcli_erasure_receipts_subject_kind"
        ),
        CheckConstraint(_in("status", ERASURE_STATUSES), name="ck_memcli_erasure_receipts_status"),
        Index("idx_memcli_erasure_receipts_status", "status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    subject_kind: Mapped[str] = mapped_column(Text, nullable=False)
    subject_digest: Mapped[str] = mapped_column(Text, nullable=False)
    salt: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'running'::text"))
    started_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    db_role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("SESSION_USER"))
    os_user: Mapped[str | None] = mapped_column(Text)
    erased: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    proof: Mapped[Any | None] = mapped_column(JSONB)


class ErasureScope(Base):
    """The sessions an erasure in progress covers (removed when it completes)."""

    __tablename__ = "memcli_erasure_scope"

    receipt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memcli_erasure_receipts.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(Text, primary_key=True)


SESSION_CLOSE_REASONS = ("manual", "timeout")


class SessionClosure(Base):
    """A session closed by an operator or after its timeout."""

    __tablename__ = "memcli_session_closures"
    __table_args__ = (
        CheckConstraint(_in("reason", SESSION_CLOSE_REASONS), name="ck_memcli_session_closures_reason"),
    )

    session_id: Mapped[str] = mapped_column(Text, primary_key=True)
    closed_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    reason: Mapped[str] = mapped_column(Text, nullable=False)


IMPORT_STATUSES = ("running", "completed", "failed", "rolled_back")


class MemoryImport(Base):
    """One ``memcli import`` run: what was read, how it went, how many rows it wrote."""

    __tablename__ = names.IMPORTS
    __table_args__ = (
        CheckConstraint(_in("status", IMPORT_STATUSES), name="ck_memory_imports_status"),
        Index("idx_memory_imports_source", "source_name", text("started_at DESC")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    layout: Mapped[str] = mapped_column(Text, nullable=False)
    source_name: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    options: Mapped[Any | None] = mapped_column(JSONB)
    counts: Mapped[Any | None] = mapped_column(JSONB)


class MemoryImportKey(Base):
    """Source row -> the memory an import wrote for it (one row per source row): resumability and rollback.

    ``import_id`` names a ``memory_imports`` row without a foreign key (revision 0012): its check cost a
    third of the map's writing, and memcli never deletes an import's row.
    """

    __tablename__ = names.IMPORT_KEYS
    __table_args__ = (
        PrimaryKeyConstraint("source_name", "source_key", "target_table", name="memory_import_keys_pkey"),
        Index("idx_memory_import_keys_import", "import_id"),
    )

    source_name: Mapped[str] = mapped_column(Text, nullable=False)
    source_key: Mapped[str] = mapped_column(Text, nullable=False)
    target_table: Mapped[str] = mapped_column(Text, nullable=False)
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    import_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class MemoryKey(Base):
    """The partitioned conversation_memory's unique (session_id, context_key): the row holding each key."""

    __tablename__ = names.MEMORY_KEYS
    __table_args__ = (
        PrimaryKeyConstraint("session_id", "context_key", name="conversation_memory_keys_pkey"),
        {
            "comment": "the (session_id, context_key) of every memory of the partitioned "
            "conversation_memory, where a unique index cannot be: kept by its triggers"
        },
    )

    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    context_key: Mapped[str] = mapped_column(Text, nullable=False)
    memory_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class MemoryAccess(Base):
    """A search's access to a memory, recorded while a vector index is built concurrently (see
    :mod:`memcli.access`). The table has no key (an append is one heap insertion); the ORM needs one, so
    the mapping names both columns, which the table does not enforce."""

    __tablename__ = names.ACCESS_LOG
    __table_args__ = (
        {
            "comment": "searches' access records while a vector index is built concurrently; folded into "
            "semantic_memory.access_count / last_accessed_at afterwards"
        },
    )
    __mapper_args__ = {"primary_key": ["memory_id", "accessed_at"]}

    memory_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    accessed_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)


class CreatedObject(Base):
    """What memcli created (rather than adopted): a downgrade drops only these."""

    __tablename__ = names.CREATED_OBJECTS
    __table_args__ = (
        PrimaryKeyConstraint("object_type", "object_name", name="memcli_created_objects_pkey"),
        {"comment": "Objects memcli created (not adopted): a downgrade drops only these."},
    )

    object_type: Mapped[str] = mapped_column(Text, nullable=False)
    object_name: Mapped[str] = mapped_column(Text, nullable=False)
    revision: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """What autogenerate compares: everything but the tables of other tools that live in the same database
    (reflected tables the models do not describe)."""
    return not (type_ == "table" and reflected and compare_to is None)
