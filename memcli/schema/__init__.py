"""SQLAlchemy 2 models of memcli's schema (the migrations in ``alembic/`` are the source of truth; a test
proves the two agree)."""
