"""A deterministic, LEXICAL embedder: feature hashing of words and character n-grams.

It captures shared words and spellings, not meaning ("vegetarian" and "meat-free" are unrelated to it). It
exists so tests and air-gapped smoke runs can exercise the whole pipeline with nothing installed and no
network, and its name ("hashing-v1") is recorded in the database like any model's, so its vectors are never
mixed with a real model's. Same text, same vector, on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memcli.schema import names

if TYPE_CHECKING:
    import numpy

NAME = "hashing-v1"
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Whole words carry most of the signal; character n-grams let "meal" and "meals" overlap.
_WORD_WEIGHT = 1.0
_NGRAM_WEIGHT = 0.35
_NGRAM_SIZES = (3, 4)


def _bucket(feature: str, dimension: int, salt: bytes = b"") -> tuple[int, float]:
    # blake2b, not hash(): Python's string hash is salted per process.
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, salt=salt).digest()
    value = int.from_bytes(digest, "little")
    # The sign bit spreads collisions around zero instead of piling them up (signed feature hashing).
    return value % dimension, (1.0 if (value >> 63) & 1 else -1.0)


class HashingEmbedder:
    """Lexical feature hashing into ``dimension`` dimensions, L2-normalised. Not semantic."""

    lexical = True
    forkable = True  # computed here, in Python: a re-embed's backfill runs it in a process of its own

    def __init__(
        self, dimension: int = names.DEFAULT_EMBEDDING_DIMENSION, variant: str | None = None
    ) -> None:
        if dimension < 1:
            raise ValueError("dimension must be positive")
        # A variant ("hashing:b") hashes with its own salt: another deterministic model, under its own name,
        # whose vectors are unrelated to the default's (model changes can be exercised without a download).
        self.name = f"{NAME}:{variant}" if variant else NAME
        self.variant = variant
        self._salt = hashlib.blake2b(variant.encode("utf-8"), digest_size=16).digest() if variant else b""
        self.dimension = dimension

    def features(self, text: str) -> list[tuple[str, float]]:
        tokens = _TOKEN.findall(text.lower())
        feats: list[tuple[str, float]] = []
        for token in tokens:
            feats.append(("w:" + token, _WORD_WEIGHT))
            padded = f"<{token}>"
            for size in _NGRAM_SIZES:
                feats.extend(
                    ("c:" + padded[i : i + size], _NGRAM_WEIGHT) for i in range(len(padded) - size + 1)
                )
        if not feats:
            # An empty (or punctuation-only) text still gets a unit vector: a zero vector has no cosine.
            feats.append(("empty:", 1.0))
        return feats

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        from memcli.embeddings import normalise

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in self.features(text):
                index, sign = _bucket(feature, self.dimension, self._salt)
                out[row, index] += sign * weight
        return normalise(out)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimension={self.dimension}, variant={self.variant!r})"
