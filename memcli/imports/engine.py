"""The import engine: plan, batched COPY with a source-key map, resume, and rollback of one import.

Every batch is one transaction: it writes the batch's memories with COPY (``semantic_memory``, and
``conversation_memory`` / ``context_relevance`` for records that carry a tier or a decay rate), one
``memory_import_keys`` row per source row (naming its memory; the ids of its other rows derive from the same
source key), and the import's running counts. A batch is
therefore either wholly in the database (and its source rows in the map) or not at all: a killed import
resumes by reading the source again and skipping every row the map already holds, and a source row is never
written twice (the map's primary key would refuse it).

The source is read, converted and prepared (vectors checked, JSON encoded, ids derived, COPY data
formatted) ahead of the writes (:mod:`memcli.jobs.prefetch`): the server's work on one batch and the Python
work on the next overlap. Where it can, a forked process does it, on a connection of its own to the source,
and hands over each batch as COPY bytes and counts; an import that embeds on the way uses a thread (the
embedder is the caller's, and numpy releases the GIL). A resumed import reads the keys already in the map
once, at its start.

Vectors: the source's vectors are kept when their model is the database's recorded model (else the
configured embedder's, for a database that has none recorded) and their length the column's dimension.
Otherwise they are re-embedded on the way (``mismatched="reembed"``) or left NULL for ``memcli embed``
(``"leave"``). A vector that is not an array of finite numbers, or whose length differs from the source's
dimension, rejects its whole row: reported by source key, never half-imported.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from memcli import access
from memcli.errors import ConfigError, MemcliError
from memcli.imports.records import (
    CONVERSATION,
    RELEVANCE,
    SEMANTIC,
    TARGET_TABLES,
    BadVector,
    MemoryRecord,
    Rejection,
    check_vector,
    context_key,
    target_id,
)
from memcli.jobs.common import DEFAULT_TIMEOUTS, ProgressCallback, in_batch, own_transactions
from memcli.jobs.locks import job_lock
from memcli.jobs.prefetch import prefetched, prefetched_in_process, processes_available
from memcli.jobs.runlog import FAILED, SUCCEEDED, RunLog
from memcli.schema import names
from memcli.vector_copy import vector_cursor
from memcli.vector_index import column_type

if TYPE_CHECKING:
    import numpy
    import psycopg

    from memcli.embeddings import Embedder

IMPORT_LOCK = "import"
# Held by everything that writes vectors in bulk (import, re-embed): a re-embed must not swap the model
# under an import that is writing the old one.
VECTORS_LOCK = "vectors"
MISMATCHED = ("leave", "reembed")
MAX_BATCH_SIZE = names.MAX_IMPORT_BATCH_SIZE
SAMPLE_ROWS = 500  # source rows read to learn the source's vector dimension
MAX_REPORTED_REJECTIONS = 1000  # kept in the import's record (all are in the result)


class UnknownImportError(MemcliError):
    """Rollback of an import id the database has no record of (exit 1)."""


class Source(Protocol):
    """Where an import reads from: a legacy layout in a database, or a JSON Lines file."""

    layout: str
    name: str  # identifies the source in the key map: layout and database (or file)

    def streams(self) -> Sequence[str]: ...
    def own_connection(self) -> None: ...  # in a forked reader: stop using the caller's connection
    def count(self, stream: str) -> int: ...
    def batches(self, stream: str, batch_size: int) -> Iterator[list[Any]]: ...
    def to_records(self, stream: str, rows: list[Any]) -> list[MemoryRecord | Rejection]: ...
    def source_model(self) -> str | None: ...
    def settings(self) -> dict[str, Any]: ...
    def mapping(self) -> dict[str, str]: ...
    def dropped(self) -> dict[str, int]: ...


@dataclass
class ImportOptions:
    batch_size: int = names.IMPORT_BATCH_SIZE
    mismatched: str = "leave"  # vectors of another model or dimension: "leave" (NULL) or "reembed"
    source_model: str | None = None  # overrides what the source says about its model
    source_dimension: int | None = None  # overrides the dimension learnt from a sample
    apply_settings: bool = True  # write the source's settings that have a memcli equivalent

    def check(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        if self.mismatched not in MISMATCHED:
            raise ConfigError(
                f"unknown vector policy {self.mismatched!r}", hint=f"one of {', '.join(MISMATCHED)}"
            )


@dataclass
class VectorPlan:
    target_model: str | None
    target_dimension: int | None
    source_model: str | None
    source_dimension: int | None
    keep: bool  # the source's vectors are the database's model and dimension
    action: str  # what happens to vectors that are not kept: "leave" or "reembed"
    reason: str


@dataclass
class SettingChange:
    key: str
    old: Any
    new: Any


@dataclass
class ImportResult:
    layout: str
    source_name: str
    dry_run: bool
    import_id: uuid.UUID | None = None
    resumed: bool = False
    status: str = "planned"
    mapping: dict[str, str] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    already_imported: int = 0
    vectors: VectorPlan | None = None
    settings: list[SettingChange] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # source rows no memcli table takes, by kind
    read: int = 0
    imported: int = 0
    skipped: int = 0  # already in the key map (an earlier run of this import, or another import)
    rows_written: dict[str, int] = field(default_factory=dict)  # by target table
    vectors_kept: int = 0
    vectors_reembedded: int = 0
    vectors_missing: int = 0  # left NULL for memcli embed
    rejected: list[Rejection] = field(default_factory=list)
    batches: int = 0
    duration_seconds: float = 0.0
    rows_per_second: float | None = None

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "imported": self.imported,
            "skipped": self.skipped,
            "rows_written": self.rows_written,
            "vectors_kept": self.vectors_kept,
            "vectors_reembedded": self.vectors_reembedded,
            "vectors_missing": self.vectors_missing,
            "rejected": len(self.rejected),
            "rejections": [
                {"source_key": r.source_key, "reason": r.reason}
                for r in self.rejected[:MAX_REPORTED_REJECTIONS]
            ],
            "batches": self.batches,
        }


# ----------------------------------------------------------------------------------------------- planning


def _target_model(conn: psycopg.Connection, embedder: Embedder | None) -> tuple[str | None, int | None]:
    from memcli.embeddings import stored_dimension
    from memcli.settings import get_setting

    recorded = get_setting(conn, "embedding.model")
    model = recorded if recorded is not None else (embedder.name if embedder is not None else None)
    return model, stored_dimension(conn)


def _sample_dimension(source: Source) -> int | None:
    """The most common vector length among the first rows of the source (its model's dimension)."""
    lengths: Counter[int] = Counter()
    for stream in source.streams():
        for rows in source.batches(stream, SAMPLE_ROWS):
            for record in source.to_records(stream, rows):
                if isinstance(record, MemoryRecord) and record.raw_vector is not None:
                    with contextlib.suppress(BadVector):
                        lengths[len(check_vector(record.raw_vector, None))] += 1
            break
        if lengths:
            break
    return lengths.most_common(1)[0][0] if lengths else None


def plan_vectors(
    conn: psycopg.Connection, source: Source, embedder: Embedder | None, options: ImportOptions
) -> VectorPlan:
    target_model, target_dim = _target_model(conn, embedder)
    source_model = options.source_model or source.source_model()
    source_dim = options.source_dimension or _sample_dimension(source)
    if source_dim is None:
        reason = "the source has no vectors"
        keep = False
    elif source_model is None:
        reason = "the source does not name its model (pass --source-model if it is the database's)"
        keep = False
    elif source_model != target_model:
        reason = f"the source's model {source_model!r} is not the database's {target_model!r}"
        keep = False
    elif source_dim != target_dim:
        reason = f"the source's vectors have {source_dim} dimensions, the database {target_dim}"
        keep = False
    else:
        reason = f"same model ({source_model}) and dimension ({source_dim})"
        keep = True
    return VectorPlan(target_model, target_dim, source_model, source_dim, keep, options.mismatched, reason)


def _setting_changes(conn: psycopg.Connection, wanted: dict[str, Any]) -> list[SettingChange]:
    from memcli.settings import get_setting

    changes = []
    for key, value in wanted.items():
        old = get_setting(conn, key)
        if old != value:
            changes.append(SettingChange(key, old, value))
    return changes


def _already_imported(conn: psycopg.Connection, source_name: str) -> int:
    row = conn.execute(
        "SELECT count(DISTINCT source_key) FROM memory_import_keys WHERE source_name = %s", (source_name,)
    ).fetchone()
    return int(row[0]) if row else 0


def plan_import(
    conn: psycopg.Connection, source: Source, embedder: Embedder | None, options: ImportOptions
) -> ImportResult:
    """What an import of ``source`` would do, changing nothing (``--dry-run``)."""
    options.check()
    require_import_tables(conn)
    result = ImportResult(layout=source.layout, source_name=source.name, dry_run=True)
    result.mapping = source.mapping()
    result.source_rows = {stream: source.count(stream) for stream in source.streams()}
    result.already_imported = _already_imported(conn, source.name)
    result.vectors = plan_vectors(conn, source, embedder, options)
    result.settings = _setting_changes(conn, source.settings()) if options.apply_settings else []
    result.dropped = source.dropped()
    return result


# ---------------------------------------------------------------------------------------------- importing


_SEMANTIC_COLUMNS = (
    "id, session_id, user_id, content_type, content_text, embedding_vector, metadata, relevance_score, "
    "created_at, embedding_model, access_count, last_accessed_at"
)
_SEMANTIC_TYPES = (
    "uuid",
    "text",
    "uuid",
    "text",
    "text",
    "vector",
    "jsonb",
    "float4",
    "timestamptz",
    "text",
    "int4",
    "timestamptz",
)
_CONVERSATION_COLUMNS = (
    "id, session_id, user_id, memory_type, context_key, context_value, importance_score, access_count, "
    "last_accessed_at, created_at, expires_at"
)
_CONVERSATION_TYPES = (
    "uuid",
    "text",
    "uuid",
    "text",
    "text",
    "jsonb",
    "float4",
    "int4",
    "timestamptz",
    "timestamptz",
    "timestamptz",
)
_RELEVANCE_COLUMNS = "id, session_id, context_type, context_key, relevance_score, decay_factor, created_at"
_RELEVANCE_TYPES = ("uuid", "text", "text", "text", "float4", "float4", "timestamptz")
_KEY_COLUMNS = "source_name, source_key, target_table, target_id, import_id"
_KEY_TYPES = ("text", "text", "text", "uuid", "uuid")
# compact, and without the per-call set-up of json.dumps: metadata is encoded once per imported row
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


@dataclass
class _Prepared:
    record: MemoryRecord
    vector: numpy.ndarray | None
    model: str | None
    kept: bool = False  # the source's own vector (else re-embedded, or None)


@dataclass
class _Rows:
    """One batch as COPY rows, per target table, and its audit counts per user."""

    semantic: list[tuple[Any, ...]] = field(default_factory=list)
    conversation: list[tuple[Any, ...]] = field(default_factory=list)
    relevance: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    audit: dict[uuid.UUID | None, dict[str, int]] = field(default_factory=dict)
    # per table: (columns, rows, the rows as binary COPY data), formatted by the preparing thread
    copy_data: list[tuple[str, str, int, bytes]] = field(default_factory=list)


@dataclass
class _Batch:
    """One batch as the writes need it: COPY data and counts (small to hand over from a reader process)."""

    n_rows: int  # source rows read
    n_done: int  # of those, already in the key map
    n_imported: int  # rows to write
    vectors: Counter[str]  # of those: "kept", "reembedded", "missing"
    rejected: list[Rejection]
    rows: _Rows

    @classmethod
    def of(
        cls, n_rows: int, n_done: int, prepared: list[_Prepared], rejected: list[Rejection], rows: _Rows
    ) -> _Batch:
        vectors = Counter(
            "missing" if p.vector is None else "kept" if p.kept else "reembedded" for p in prepared
        )
        return cls(n_rows, n_done, len(prepared), vectors, rejected, rows)


class _Importer:
    def __init__(
        self,
        conn: psycopg.Connection,
        source: Source,
        embedder: Embedder | None,
        options: ImportOptions,
        plan: VectorPlan,
        result: ImportResult,
    ) -> None:
        self.conn = conn
        self.source = source
        self.embedder = embedder
        self.options = options
        self.plan = plan
        self.result = result
        self.done = self._done_keys()
        self._cursor: psycopg.Cursor[Any]
        self._format_cursor: psycopg.Cursor[Any]
        # The vectors go in binary as the column's own type (vector or halfvec: memcli vectors convert).
        kind = column_type(conn)[0]
        self._semantic_types = [kind if t == "vector" else t for t in _SEMANTIC_TYPES]

    def _done_keys(self) -> set[str]:
        """The source's rows already in the key map (an earlier run of this import), read once: while the
        import lock is held nothing else adds to them."""
        rows = self.conn.execute(
            "SELECT DISTINCT source_key FROM memory_import_keys WHERE source_name = %s", (self.source.name,)
        ).fetchall()
        return {r[0] for r in rows}

    def _prepare(self, records: list[MemoryRecord | Rejection]) -> tuple[list[_Prepared], list[Rejection]]:
        plan = self.plan
        prepared: list[_Prepared] = []
        rejected: list[Rejection] = []
        to_embed: list[_Prepared] = []
        for record in records:
            if isinstance(record, Rejection):
                rejected.append(record)
                continue
            item = _Prepared(record, None, None)
            if _empty(record.raw_vector):
                record.raw_vector = None  # an empty array is a memory not embedded yet, like NULL
            if record.raw_vector is not None:
                model = record.vector_model or plan.source_model
                matches = model is not None and model == plan.target_model
                expected = plan.target_dimension if matches else plan.source_dimension
                try:
                    vector = check_vector(record.raw_vector, expected)
                except BadVector as exc:
                    rejected.append(Rejection(record.source_key, f"bad vector: {exc}"))
                    continue
                if matches and (plan.keep or record.vector_model is not None):
                    item.vector, item.model, item.kept = vector, plan.target_model, True
            if item.vector is None and plan.action == "reembed":
                to_embed.append(item)
            prepared.append(item)
        if to_embed:
            assert self.embedder is not None
            vectors = self.embedder.embed([p.record.content_text for p in to_embed])
            for item, vector in zip(to_embed, vectors, strict=True):
                item.vector, item.model = vector, self.embedder.name
        return prepared, rejected

    def _rows(self, prepared: list[_Prepared], import_id: uuid.UUID) -> _Rows:
        """The COPY rows of one batch, every value converted (JSON encoded, ids derived) here, off the
        writing thread."""
        # JSON goes in encoded already (here, off the writing thread), passed through as it is by COPY
        from psycopg.types.json import Jsonb

        name = self.source.name
        out = _Rows()
        # rows per table written for each user, for the batch's audit rows
        audit: dict[uuid.UUID | None, dict[str, int]] = {}
        for item in prepared:
            r = item.record
            counts = audit.get(r.user_id)
            if counts is None:
                counts = audit[r.user_id] = {SEMANTIC: 0}
            counts[SEMANTIC] += 1
            row_id = target_id(name, r.source_key, SEMANTIC)
            metadata = _ENCODE(r.metadata)
            out.semantic.append(
                (
                    row_id,
                    r.session_id,
                    r.user_id,
                    r.content_type,
                    r.content_text,
                    item.vector,
                    Jsonb(metadata, dumps=_as_is),
                    r.relevance if r.relevance is not None else 0.5,
                    r.created_at,
                    item.model,
                    r.access_count,
                    r.last_accessed_at,
                )
            )
            # one key row per source row: its other rows' ids are derived from the same key (rollback)
            out.keys.append((name, r.source_key, SEMANTIC, row_id, import_id))
            if r.tier is not None:
                counts[CONVERSATION] = counts.get(CONVERSATION, 0) + 1
                conversation_id = target_id(name, r.source_key, CONVERSATION)
                out.conversation.append(
                    (
                        conversation_id,
                        r.session_id,
                        r.user_id,
                        r.tier,
                        context_key(name, r.source_key),
                        Jsonb(_tier_value(r, row_id, metadata), dumps=_as_is),
                        r.importance if r.importance is not None else 0.5,
                        r.access_count,
                        r.last_accessed_at or r.created_at,
                        r.created_at,
                        r.expires_at,
                    )
                )
            if r.decay_factor is not None:
                counts[RELEVANCE] = counts.get(RELEVANCE, 0) + 1
                relevance_id = target_id(name, r.source_key, RELEVANCE)
                out.relevance.append(
                    (
                        relevance_id,
                        r.session_id,
                        "imported_memory",
                        context_key(name, r.source_key),
                        r.importance if r.importance is not None else 0.5,
                        r.decay_factor,
                        r.created_at,
                    )
                )
        out.audit = audit
        self._format(out)
        return out

    def _tables(self, rows: _Rows) -> list[tuple[str, str, Sequence[str], list[tuple[Any, ...]]]]:
        return [
            (SEMANTIC, _SEMANTIC_COLUMNS, self._semantic_types, rows.semantic),
            (CONVERSATION, _CONVERSATION_COLUMNS, _CONVERSATION_TYPES, rows.conversation),
            (RELEVANCE, _RELEVANCE_COLUMNS, _RELEVANCE_TYPES, rows.relevance),
            (names.IMPORT_KEYS, _KEY_COLUMNS, _KEY_TYPES, rows.keys),
        ]

    def _format(self, rows: _Rows) -> None:
        """Each table's rows as binary COPY data, formatted here by the preparing thread: the writing
        thread, which the import waits on, only sends it (psycopg's ``Copy`` writing to a buffer)."""
        import io

        from psycopg import Copy
        from psycopg.copy import FileWriter

        for table, columns, types, data in self._tables(rows):
            if not data:
                continue
            buffer = io.BytesIO()
            with Copy(self._format_cursor, binary=True, writer=FileWriter(buffer)) as copy:
                copy.set_types(types)
                for row in data:
                    copy.write_row(row)
            rows.copy_data.append((table, columns, len(data), buffer.getvalue()))
            data.clear()  # formatted: the batch waiting in the queue keeps the bytes only

    def _write(self, rows: _Rows) -> dict[str, int]:
        """COPY one batch's formatted rows (binary: vectors as float32 bytes, JSON already encoded)."""
        written = dict.fromkeys(TARGET_TABLES, 0)
        cur = self._cursor
        for table, columns, count, data in rows.copy_data:
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(data)
            if table in written:
                written[table] = count
        return written

    def _close_batch(self, rows: _Rows | None, counts: dict[str, Any], import_id: uuid.UUID) -> None:
        """The rest of a batch's transaction, in two round trips (the writing thread waits on each, and
        under load each waits for a CPU): the batch's audit rows, then its counts and commit setting."""
        from psycopg.types.json import Jsonb

        from memcli.people import audit

        with self.conn.pipeline():
            if rows is not None and rows.audit:
                # one audit row per user whose memories this batch wrote (rows per table, never content), in
                # the batch's transaction: the import of a user's data is never committed without its audit
                # row.
                audit.record_many(
                    self.conn,
                    "import",
                    [("user" if user else "session", user, n) for user, n in rows.audit.items()],
                )
            self.conn.execute(
                "UPDATE memory_imports SET counts = %s WHERE id = %s", (Jsonb(counts), import_id)
            )
            # The batch's COMMIT does not wait for its WAL to reach the disk. A crash of the server can lose
            # only whole batches, each with its key-map rows (so a rerun imports them again, once), and the
            # import's last commit, which waits, makes every batch before it durable.
            self.conn.execute("SELECT set_config('synchronous_commit', 'off', true)")

    def _warm_up(self) -> _Rows:
        """A batch of one row of every value type, formatted once to make the dumpers (then dropped)."""
        import datetime as dt

        import numpy as np
        from psycopg.types.json import Jsonb

        doc = Jsonb("{}", dumps=_as_is)
        now = dt.datetime.now(dt.UTC)
        some = uuid.uuid4()
        vector = np.zeros(self.plan.target_dimension or 1, dtype=np.float32)
        rows = _Rows()
        rows.semantic.append((some, "s", some, "t", "t", vector, doc, 0.5, now, "m", 0, now))
        rows.conversation.append((some, "s", some, "t", "t", doc, 0.5, 0, now, now, now))
        rows.relevance.append((some, "s", "t", "t", 0.5, 0.5, now))
        rows.keys.append(("n", "k", "t", some, some))
        return rows

    def _batches(self, import_id: uuid.UUID) -> Iterator[_Batch]:
        """Read, convert and prepare the source's batches (run ahead of the writes, in their own thread)."""
        for stream in self.source.streams():
            for rows in self.source.batches(stream, self.options.batch_size):
                records = self.source.to_records(stream, rows)
                # rows already in the key map (an earlier run of this import) are skipped
                fresh = [r for r in records if r.source_key not in self.done] if self.done else records
                prepared, rejected = self._prepare(fresh)
                yield _Batch.of(
                    len(rows), len(records) - len(fresh), prepared, rejected, self._rows(prepared, import_id)
                )

    def _ahead(self, import_id: uuid.UUID) -> Iterator[_Batch]:
        """The batches, prepared ahead of the writes: by a forked process where it can, else by a thread
        when the source has a connection of its own, else here, in turn with the writes."""
        if processes_available() and self.plan.action != "reembed":

            def produce() -> Iterator[_Batch]:
                self.source.own_connection()
                return self._batches(import_id)

            return prefetched_in_process(produce)
        batches = self._batches(import_id)
        return prefetched(batches) if getattr(self.source, "conn", None) is not self.conn else batches

    def run(self, import_id: uuid.UUID, progress: ProgressCallback | None, total: int) -> None:
        result = self.result
        # The cursor whose adapters (pgvector's among them) format the COPY data, used by the preparing
        # thread only. Its dumpers are made here, before that thread starts: making one reads the
        # connection's encoding, which the writing thread must not be using at the same time.
        self._format_cursor = vector_cursor(self.conn)
        self._format(self._warm_up())
        ahead = self._ahead(import_id)
        # closed on the way out, whatever happens: the producer thread stops before the caller goes on
        with self._format_cursor, contextlib.closing(ahead), vector_cursor(self.conn) as self._cursor:
            for batch in ahead:

                def work(batch: _Batch = batch) -> dict[str, int]:
                    written = self._write(batch.rows) if batch.n_imported else {}
                    # the counts as they are once this batch commits, stored in the same transaction
                    projected = _projection(result)
                    _book(projected, written, batch)
                    self._close_batch(batch.rows if batch.n_imported else None, projected.counts(), import_id)
                    return written

                def book(written: dict[str, int], batch: _Batch = batch) -> None:
                    _book(result, written, batch)

                in_batch(self.conn, DEFAULT_TIMEOUTS, work, book)
                if progress:
                    progress(result.read, total)


def _tier_value(record: MemoryRecord, memory_id: uuid.UUID, metadata: str) -> str:
    """The ``context_value`` of a memory's tier row, as JSON: its text, its memory's id, then its metadata
    (``metadata``, already encoded for the memory itself, is reused rather than encoded again), and
    ``source`` (null when the metadata has none).

    jsonb keeps the last of duplicate keys, so a metadata key ``text`` or ``semantic_memory_id`` wins over
    the first two, as it would in ``{"text": ..., "semantic_memory_id": ..., **metadata}``.
    """
    head = f'{{"text":{_ENCODE(record.content_text)},"semantic_memory_id":"{memory_id}"'
    tail = "" if "source" in record.metadata else ',"source":null'
    if metadata == "{}":
        return head + tail + "}"
    return head + "," + metadata[1:-1] + tail + "}"


def _as_is(text: str) -> str:
    return text


def _projection(result: ImportResult) -> ImportResult:
    """A copy of ``result`` that booking a batch into leaves ``result`` as it is."""
    from dataclasses import replace

    return replace(result, rejected=list(result.rejected), rows_written=dict(result.rows_written))


def _empty(raw: Any) -> bool:
    if raw is None:
        return False
    if isinstance(raw, str):
        return raw.strip() in ("[]", "{}", "")
    return isinstance(raw, list | tuple) and len(raw) == 0


def require_import_tables(conn: psycopg.Connection) -> None:
    """NotReadyError (exit 4) unless the schema has the import bookkeeping (revision 0007)."""
    from memcli.errors import NotReadyError
    from memcli.readiness import require_migrated

    require_migrated(conn)
    row = conn.execute("SELECT to_regclass('public.memory_import_keys') IS NOT NULL").fetchone()
    if not (row and row[0]):
        raise NotReadyError("the database has no import bookkeeping yet", hint="run: memcli migrate")


def _book(result: ImportResult, written: dict[str, int], batch: _Batch) -> None:
    result.batches += 1
    result.read += batch.n_rows
    result.skipped += batch.n_done
    result.imported += batch.n_imported
    result.rejected.extend(batch.rejected)
    for table, count in written.items():
        result.rows_written[table] = result.rows_written.get(table, 0) + count
    result.vectors_missing += batch.vectors["missing"]
    result.vectors_kept += batch.vectors["kept"]
    result.vectors_reembedded += batch.vectors["reembedded"]


def _open_import(
    conn: psycopg.Connection, source: Source, options: ImportOptions, plan: VectorPlan
) -> tuple[uuid.UUID, bool]:
    """The unfinished import of this source to continue (resumed=True), else a new one."""
    from psycopg.types.json import Jsonb

    row = conn.execute(
        """
        SELECT id FROM memory_imports WHERE source_name = %s AND status IN ('running', 'failed')
        ORDER BY started_at DESC LIMIT 1
        """,
        (source.name,),
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE memory_imports SET status = 'running', finished_at = NULL WHERE id = %s", (row[0],)
        )
        return row[0], True
    stored = {
        "batch_size": options.batch_size,
        "mismatched": options.mismatched,
        "source_model": plan.source_model,
        "source_dimension": plan.source_dimension,
        "target_model": plan.target_model,
        "keep_vectors": plan.keep,
    }
    row = conn.execute(
        "INSERT INTO memory_imports (layout, source_name, status, options, counts) "
        "VALUES (%s, %s, 'running', %s, '{}') RETURNING id",
        (source.layout, source.name, Jsonb(stored)),
    ).fetchone()
    assert row is not None
    return row[0], False


def _apply_settings(conn: psycopg.Connection, import_id: uuid.UUID, changes: list[SettingChange]) -> None:
    """Write the source's settings, remembering the old values in the import's options for rollback."""
    from psycopg.types.json import Jsonb

    from memcli.settings import set_setting

    if not changes:
        return
    for change in changes:
        set_setting(conn, change.key, change.new)
    conn.execute(
        "UPDATE memory_imports SET options = options || %s WHERE id = %s",
        (Jsonb({"settings": [{"key": c.key, "old": c.old, "new": c.new} for c in changes]}), import_id),
    )


def run_import(
    conn: psycopg.Connection,
    source: Source,
    embedder: Embedder | None,
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import ``source`` into the memory tables (see the module docstring); resumes an unfinished import.

    Holds the import lock and the vectors lock (LockedError, exit 75, if another import or a re-embed runs).
    """
    from memcli.embeddings import ensure_compatible

    options = options or ImportOptions()
    options.check()
    started = time.perf_counter()
    with own_transactions(conn), job_lock(conn, [IMPORT_LOCK, VECTORS_LOCK], job="import"):
        require_import_tables(conn)
        plan = plan_vectors(conn, source, embedder, options)
        needs_model = plan.action == "reembed" or plan.keep
        if needs_model and embedder is not None:
            with conn.transaction():
                ensure_compatible(conn, embedder)  # refuses another model; records it on a first write
        elif plan.action == "reembed":
            raise ConfigError("re-embedding on the way needs an embedder", hint="pass --embedder")
        result = ImportResult(layout=source.layout, source_name=source.name, dry_run=False, vectors=plan)
        result.mapping = source.mapping()
        result.dropped = source.dropped()
        result.source_rows = {stream: source.count(stream) for stream in source.streams()}
        total = sum(result.source_rows.values())
        with conn.transaction():
            import_id, resumed = _open_import(conn, source, options, plan)
            result.import_id, result.resumed = import_id, resumed
            if options.apply_settings and not resumed:
                result.settings = _setting_changes(conn, source.settings())
                _apply_settings(conn, import_id, result.settings)
        if progress:
            progress(0, total)
        importer = _Importer(conn, source, embedder, options, plan, result)
        # every run is also in the maintenance log, like the other jobs
        log = RunLog(conn, "import")
        log.close_interrupted()
        entry = log.start(None, {"import_id": str(import_id), "source": source.name, "resumed": resumed})
        try:
            importer.run(import_id, progress, total)
        except BaseException as exc:
            # a run stopped by a signal or an error stays resumable: the next run continues it
            with contextlib.suppress(Exception):
                conn.execute(
                    "UPDATE memory_imports SET status = 'failed', finished_at = now() WHERE id = %s",
                    (import_id,),
                )
                log.finish(entry, FAILED, rows=result.imported, error=str(exc) or type(exc).__name__)
            raise
        conn.execute(
            "UPDATE memory_imports SET status = 'completed', finished_at = now() WHERE id = %s", (import_id,)
        )
        result.status = "completed"
        log.finish(
            entry,
            SUCCEEDED,
            rows=result.imported,
            details={"rows_written": result.rows_written, "rejected": len(result.rejected)},
        )
    elapsed = time.perf_counter() - started
    result.duration_seconds = round(elapsed, 3)
    result.rows_per_second = round(result.imported / elapsed, 1) if result.imported and elapsed > 0 else None
    return result


# ----------------------------------------------------------------------------------------------- rollback


@dataclass
class RollbackResult:
    import_id: uuid.UUID
    layout: str
    source_name: str
    dry_run: bool
    status_before: str
    rows: dict[str, int] = field(default_factory=dict)  # rows the import wrote, still present, by table
    deleted: dict[str, int] = field(default_factory=dict)
    # key-map rows (memories) whose row is gone since the import (consolidated, cleaned up, forgotten)
    already_gone: int = 0
    settings_restored: list[str] = field(default_factory=list)
    settings_kept: list[str] = field(default_factory=list)  # changed again since: left as they are
    batches: int = 0
    duration_seconds: float = 0.0


def _import_row(conn: psycopg.Connection, import_id: str | uuid.UUID) -> tuple[Any, ...]:
    try:
        wanted = uuid.UUID(str(import_id))
    except ValueError:
        raise UnknownImportError(
            f"no import {import_id!r}: not an import id", hint="memcli import list shows the imports"
        ) from None
    row = conn.execute(
        "SELECT id, layout, source_name, status, options FROM memory_imports WHERE id = %s", (wanted,)
    ).fetchone()
    if row is None:
        raise UnknownImportError(f"no import {wanted} in this database", hint="memcli import list shows them")
    return row


_PRESENT_CHUNK = 10_000  # key-map rows per page (and ids per count query) of a rollback's count


def _targets(keys: Sequence[tuple[str, str, str, uuid.UUID]]) -> dict[str, list[uuid.UUID]]:
    """The rows of every table that key-map rows stand for, by table.

    A source row has one key-map row, naming its ``semantic_memory`` row; the ids of the tier and relevance
    rows written with it derive from the same source key (:func:`target_id`), so they are named here without
    a row of their own. (The derived id of a row that was never written, a memory without a tier, matches
    nothing: it is unique to that source row.) Key-map rows naming another table directly, as imports
    made before one row per source row wrote them, are taken as they are.
    """
    by_table: dict[str, set[uuid.UUID]] = {table: set() for table in TARGET_TABLES}
    for source_name, source_key, table, target in keys:
        by_table.setdefault(table, set()).add(target)
        if table == SEMANTIC:
            for derived in (CONVERSATION, RELEVANCE):
                by_table[derived].add(target_id(source_name, source_key, derived))
    return {table: list(ids) for table, ids in by_table.items() if ids}


def _present(conn: psycopg.Connection, import_id: uuid.UUID, source_name: str) -> tuple[dict[str, int], int]:
    """Rows of each table the import wrote that are still there, and how many of its key-map rows name a
    row that is gone (a memory since consolidated, cleaned up or forgotten).

    The key map is read a page at a time, in the order of its primary key (every key of an import has the
    import's source name), so a rollback of millions of rows holds one page in memory, never the map.
    """
    from psycopg import sql

    page = _PRESENT_CHUNK
    counts = dict.fromkeys(TARGET_TABLES, 0)
    gone = 0
    columns = "SELECT source_name, source_key, target_table, target_id FROM memory_import_keys "
    order = " ORDER BY source_name, source_key, target_table LIMIT %s"
    after: tuple[str, str, str] | None = None
    while True:
        if after is None:
            keys = conn.execute(
                columns + "WHERE source_name = %s AND import_id = %s" + order,
                (source_name, import_id, page),
            ).fetchall()
        else:
            keys = conn.execute(
                columns + "WHERE source_name = %s AND import_id = %s "
                "AND (source_name, source_key, target_table) > (%s, %s, %s)" + order,
                (source_name, import_id, *after, page),
            ).fetchall()
        if not keys:
            break
        full = len(keys) == page
        if full:
            # a source key's rows (several in older maps) stay on one page: a memory's tier row named by
            # its own map row and derived from its memory's row is then one id, counted once
            whole = [k for k in keys if k[1] != keys[-1][1]]
            keys = whole or keys
        for table, ids in _targets(keys).items():
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (ids,)
            ).fetchone()
            counts[table] += int(row[0]) if row else 0
        named: dict[str, list[uuid.UUID]] = {}
        for _, _, table, target in keys:
            named.setdefault(table, []).append(target)
        for table, ids in named.items():
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (ids,)
            ).fetchone()
            gone += len(ids) - (int(row[0]) if row else 0)
        if not full:
            break
        after = keys[-1][:3]
    return counts, gone


def rollback_import(
    conn: psycopg.Connection,
    import_id: str | uuid.UUID,
    *,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> RollbackResult:
    """Remove exactly the rows one import wrote (found through its key map), in batches, and restore the
    settings it changed (unless changed again since). Unknown id: UnknownImportError (exit 1)."""
    from psycopg import sql

    from memcli.settings import get_setting, set_setting

    started = time.perf_counter()
    with own_transactions(conn):
        require_import_tables(conn)
        row = _import_row(conn, import_id)
        the_id, layout, source_name, status, options = row
        result = RollbackResult(the_id, layout, source_name, dry_run, status)
        result.rows, result.already_gone = _present(conn, the_id, source_name)
        total_keys_row = conn.execute(
            "SELECT count(*) FROM memory_import_keys WHERE import_id = %s", (the_id,)
        ).fetchone()
        total_keys = int(total_keys_row[0]) if total_keys_row else 0
        if dry_run:
            result.duration_seconds = round(time.perf_counter() - started, 3)
            return result
        with job_lock(conn, [IMPORT_LOCK], job="import rollback"):
            done = 0
            if progress:
                progress(0, total_keys)

            logged = access.may_unlog(conn)

            def batch() -> tuple[int, dict[str, int]]:
                keys = conn.execute(
                    "SELECT source_name, source_key, target_table, target_id FROM memory_import_keys "
                    "WHERE import_id = %s LIMIT %s",
                    (the_id, batch_size),
                ).fetchall()
                by_table = _targets(keys)
                removed: dict[str, int] = {}
                for table in (RELEVANCE, CONVERSATION, SEMANTIC):
                    ids = by_table.get(table)
                    if ids:
                        if table == SEMANTIC and logged:  # their access records go with them
                            conn.execute(access.unlog_sql(sql.SQL("SELECT unnest(%s::uuid[])")), (ids,))
                        cursor = conn.execute(
                            sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (ids,)
                        )
                        if cursor.rowcount:  # derived ids of rows never written match nothing
                            removed[table] = cursor.rowcount
                if removed:
                    from memcli.people import audit

                    # the rows an import wrote are removed: audited like any deletion of people's data
                    audit.record(conn, "delete", target="memory", counts=removed)
                conn.execute(
                    "DELETE FROM memory_import_keys WHERE import_id = %s AND target_id = ANY(%s)",
                    (the_id, [k[3] for k in keys]),
                )
                return len(keys), removed

            def book(outcome: tuple[int, dict[str, int]]) -> None:
                for table, count in outcome[1].items():
                    result.deleted[table] = result.deleted.get(table, 0) + count

            while True:
                n, _ = in_batch(conn, DEFAULT_TIMEOUTS, batch, book)
                if not n:
                    break
                result.batches += 1
                done += n
                if progress:
                    progress(done, total_keys)
            with conn.transaction():
                for change in (options or {}).get("settings", []):
                    if get_setting(conn, change["key"]) == change["new"]:
                        set_setting(conn, change["key"], change["old"])
                        result.settings_restored.append(change["key"])
                    else:
                        result.settings_kept.append(change["key"])
                conn.execute(
                    "UPDATE memory_imports SET status = 'rolled_back', finished_at = now() WHERE id = %s",
                    (the_id,),
                )
            log = RunLog(conn, "import-rollback")
            log.finish(
                log.start(None, {"import_id": str(the_id)}),
                SUCCEEDED,
                rows=sum(result.deleted.values()),
                details={"deleted": result.deleted, "settings_restored": result.settings_restored},
            )
    result.duration_seconds = round(time.perf_counter() - started, 3)
    return result


@dataclass
class ImportSummary:
    import_id: uuid.UUID
    layout: str
    source_name: str
    status: str
    started_at: Any
    finished_at: Any
    rows: int  # source rows the import still accounts for (distinct keys: maps written before one row per
    # source row hold one row per table written)
    counts: dict[str, Any]


def list_imports(conn: psycopg.Connection) -> list[ImportSummary]:
    require_import_tables(conn)
    rows = conn.execute(
        """
        SELECT i.id, i.layout, i.source_name, i.status, i.started_at, i.finished_at,
               (SELECT count(DISTINCT k.source_key) FROM memory_import_keys k WHERE k.import_id = i.id),
               coalesce(i.counts, '{}')
        FROM memory_imports i ORDER BY i.started_at DESC
        """
    ).fetchall()
    return [ImportSummary(*row) for row in rows]
