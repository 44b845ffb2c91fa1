"""Core business tables: adopt the application's, create the missing ones.

The 13 business tables belong to the application. Where one already exists it is adopted as it is: no
column is altered, no index added, no row touched. Only missing tables are created (with the document's
columns and indexes) and recorded in ``memcli_created_objects``, so that a downgrade drops exactly what
memcli created and never the application's tables.

Every decision is taken by the database (``DO`` blocks), so the offline SQL (``memcli migrate --sql``)
adopts and creates in the same way when a DBA runs it.

Revision ID: 0001_core_tables
Revises:
Create Date: 2024-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001_core_tables"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table name, CREATE TABLE statement, extra statements) in creation order: referenced tables first.
CORE_TABLES: list[tuple[str, str, list[str]]] = [
    (
        "businesses",
        """
        CREATE TABLE businesses (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL,
            slug text DEFAULT '',
            description text,
            category text,
            category_config jsonb,
            subscription_plan text,
            subscription_status text,
            is_active boolean DEFAULT true,
            trial_ends_at timestamptz,
            stripe_customer_id text,
            stripe_subscription_id text,
            phone_config jsonb,
            custom_phone_number text,
            custom_whatsapp_number text,
            custom_phone_sid text,
            phone_features jsonb,
            phone_usage jsonb,
            custom_number_monthly_cost numeric,
            settings jsonb,
            branding_config jsonb,
            contact_info jsonb,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now(),
            user_id uuid,
            email varchar,
            owner_name varchar,
            phone varchar,
            website_url varchar,
            owner_id uuid
        )""",
        [
            "CREATE INDEX idx_businesses_user_id ON businesses (user_id)",
            "CREATE INDEX idx_businesses_is_active ON businesses (is_active)",
            "CREATE INDEX idx_businesses_category ON businesses (category)",
        ],
    ),
    (
        "menu_categories",
        """
        CREATE TABLE menu_categories (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            name text NOT NULL,
            description text,
            sort_order integer DEFAULT 0,
            is_active boolean DEFAULT true,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "menu_items",
        """
        CREATE TABLE menu_items (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            category_id uuid REFERENCES menu_categories (id),
            name text NOT NULL,
            description text,
            price numeric,
            image_url text,
            is_available boolean DEFAULT true,
            sort_order integer DEFAULT 0,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [
            "CREATE INDEX idx_menu_items_business_id ON menu_items (business_id)",
            "CREATE INDEX idx_menu_items_category_id ON menu_items (category_id)",
            "CREATE INDEX idx_menu_items_available ON menu_items (is_available)",
        ],
    ),
    (
        "messages",
        """
        CREATE TABLE messages (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text NOT NULL,
            role text NOT NULL,
            content text NOT NULL,
            business_id uuid REFERENCES businesses (id),
            created_at timestamptz DEFAULT now(),
            chat_context text DEFAULT 'global',
            sender_type text DEFAULT 'global'
        )""",
        [
            "CREATE INDEX idx_messages_session_id ON messages (session_id)",
            "CREATE INDEX idx_messages_business_id ON messages (business_id)",
            "CREATE INDEX idx_messages_created_at ON messages (created_at DESC)",
        ],
    ),
    (
        "orders",
        """
        CREATE TABLE orders (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            session_id text,
            status text DEFAULT 'pending',
            total_amount numeric,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "order_items",
        """
        CREATE TABLE order_items (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            order_id uuid REFERENCES orders (id) ON DELETE CASCADE,
            menu_item_id uuid REFERENCES menu_items (id),
            quantity integer DEFAULT 1,
            unit_price numeric,
            notes text,
            created_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "staff",
        """
        CREATE TABLE staff (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            name text,
            role text,
            email text,
            phone text,
            is_active boolean DEFAULT true,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "tables",
        """
        CREATE TABLE tables (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            name text,
            capacity integer,
            status text DEFAULT 'available',
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "qr_codes",
        """
        CREATE TABLE qr_codes (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            table_id uuid REFERENCES tables (id) ON DELETE SET NULL,
            code text,
            url text,
            is_active boolean DEFAULT true,
            created_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "working_hours",
        """
        CREATE TABLE working_hours (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            day_of_week integer NOT NULL CONSTRAINT ck_working_hours_day_of_week
                CHECK (day_of_week BETWEEN 0 AND 6),
            open_time time,
            close_time time,
            is_closed boolean DEFAULT false
        )""",
        [],
    ),
    (
        "profiles",
        """
        CREATE TABLE profiles (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid,
            full_name text,
            email text,
            avatar_url text,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "session_states",
        """
        CREATE TABLE session_states (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text,
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            state jsonb,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
    (
        "Live Dining Board",
        """
        CREATE TABLE "Live Dining Board" (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            table_id uuid REFERENCES tables (id) ON DELETE SET NULL,
            status text,
            details jsonb,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        )""",
        [],
    ),
]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if not name.isidentifier() or name.lower() != name else name


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE memcli_created_objects (
            object_type text NOT NULL,
            object_name text NOT NULL,
            revision text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (object_type, object_name)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE memcli_created_objects IS "
        "'Objects memcli created (not adopted): a downgrade drops only these.'"
    )
    for name, create, extras in CORE_TABLES:
        body = ";\n            ".join([create.strip(), *extras])
        literal = "'" + _quote(name).replace("'", "''") + "'"
        op.execute(
            f"""
        DO $memcli$
        BEGIN
            IF to_regclass({literal}) IS NULL THEN
            {body};
            INSERT INTO memcli_created_objects (object_type, object_name, revision)
            VALUES ('table', '{name}', '{revision}');
            END IF;
        END
        $memcli$
        """  # noqa: S608 - built from this file's constants
        )


def downgrade() -> None:
    # One DROP for all of them: Postgres resolves the foreign keys between the listed tables itself, and
    # without CASCADE it refuses (rather than silently altering) an application table that references one.
    op.execute(
        """
        DO $memcli$
        DECLARE
            names text;
        BEGIN
            SELECT string_agg(quote_ident(object_name), ', ')
              INTO names
              FROM memcli_created_objects
             WHERE object_type = 'table'
               AND revision = '0001_core_tables'
               AND to_regclass(quote_ident(object_name)) IS NOT NULL;
            IF names IS NOT NULL THEN
                EXECUTE 'DROP TABLE ' || names;
            END IF;
        END
        $memcli$
        """
    )
    op.execute("DROP TABLE memcli_created_objects")
