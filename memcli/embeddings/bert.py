"""A BERT sentence encoder in numpy: the all-MiniLM-L6-v2 forward pass without PyTorch.

It reads a sentence-transformers model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``sentence_bert_config.json``) and computes what sentence-transformers computes for a Transformer + mean
Pooling + Normalize model: WordPiece tokens (the ``tokenizers`` package, the same Rust tokenizer
transformers uses), truncated to ``max_seq_length`` tokens including [CLS] and [SEP]; the BERT encoder
(embeddings, then per layer self-attention and a GELU feed-forward, each followed by a residual LayerNorm);
the mean of the token vectors under the attention mask; L2 normalisation. The vectors equal
sentence-transformers' to a cosine of 1 - 1e-6 (tests/test_embeddings_bert.py holds reference vectors).

Why numpy: the model is 22M parameters and six layers; a float32 matmul per weight matrix is all the work,
and numpy's BLAS does it as fast as torch on a CPU. The weights are memory-mapped from the safetensors file,
so the 47 MB word-embedding table costs only the rows a text uses, and nothing is converted or copied at
start-up.

Texts are sorted by token count before batching (a batch is padded to its longest text, so mixing a
300-token text with 10-token ones would multiply the work), and a batch is capped by its attention size, so
memory stays bounded whatever the texts.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy

# Largest attention-score array (batch x heads x length x length float32) one batch may build, and most
# tokens per batch: together they bound a batch's memory to a few tens of MB for any text lengths.
ATTENTION_BUDGET_BYTES = 48 * 1024 * 1024
TOKEN_BUDGET = 8192
GELU_BLOCK_VALUES = 32_768  # 128 kB of float32 per block: the temporaries of a block stay in L2

_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


class SafeTensors:
    """The tensors of a safetensors file, read one by one: memory-mapped (no copy) or read into memory.

    The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
    and byte range, then the raw little-endian data.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
        header.pop("__metadata__", None)
        self.header: dict[str, Any] = header
        self.base = 8 + header_len

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def _locate(self, name: str) -> tuple[Any, int, int, list[int]]:
        import numpy as np

        info = self.header[name]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        start, end = info["data_offsets"]
        return dtype, self.base + start, (end - start) // dtype.itemsize, info["shape"]

    def mapped(self, name: str) -> numpy.ndarray:
        """A read-only view of the file's pages: only the parts a computation touches are read."""
        import numpy as np

        dtype, offset, count, shape = self._locate(name)
        with open(self.path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)

    def read(self, name: str) -> numpy.ndarray:
        """The tensor read into an ordinary (aligned, writable) array."""
        import numpy as np

        dtype, offset, count, shape = self._locate(name)
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            return np.fromfile(handle, dtype=dtype, count=count).reshape(shape)


def _layer_norm(x: numpy.ndarray, weight: numpy.ndarray, bias: numpy.ndarray, eps: float) -> numpy.ndarray:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    x = x - mean
    variance = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(variance + eps)
    x *= weight
    x += bias
    return x


# Abramowitz & Stegun 7.1.26: erf to 1.5e-7 absolute, within float32's own rounding of GELU's inputs.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu_block(x: numpy.ndarray) -> None:
    """BERT's exact GELU, x * Phi(x), in place on one block; numpy has no erf, so a polynomial for it.

    With q = Phi(-|x|) = (1 - erf(|x| / sqrt 2)) / 2, x * Phi(x) = max(x, 0) - |x| * q for either sign.
    """
    import numpy as np

    magnitude = np.abs(x)
    t = magnitude * np.float32(_ERF_P / math.sqrt(2))
    t += 1.0
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    q = t * np.float32(a5)
    for coefficient in (a4, a3, a2, a1):
        q += coefficient
        q *= t
    e = np.square(x)  # exp(-x^2 / 2) into the buffer of t, no longer needed
    e *= -0.5
    np.exp(e, out=e)
    q *= e
    q *= magnitude
    q *= 0.5
    np.maximum(x, 0.0, out=x)
    x -= q


_POOL: Any = None


def _gelu(x: numpy.ndarray) -> numpy.ndarray:
    """GELU in place, in blocks that stay in the CPU cache, on every core (numpy ufuncs release the GIL).

    The twenty-odd element-wise passes of the erf polynomial cost as much as the matrix products when run
    over a whole (tokens x 1536) array on one core.
    """
    global _POOL
    rows = x.shape[0]
    block = max(1, GELU_BLOCK_VALUES // x.shape[1])
    starts = range(0, rows, block)
    if len(starts) == 1:
        _gelu_block(x)
        return x
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="memcli-gelu")
    list(_POOL.map(lambda start: _gelu_block(x[start : start + block]), starts))
    return x


class BertEncoder:
    """A sentence-transformers BERT model (mean pooling, normalised) evaluated with numpy."""

    def __init__(self, folder: str | Path) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        st_config_path = folder / "sentence_bert_config.json"
        st_config = json.loads(st_config_path.read_text()) if st_config_path.exists() else {}
        self.max_length = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {config.get('hidden_act')!r}")

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json carries the export's own padding (fixed 128) and truncation (128); sentence-
        # transformers overrides both per call: pad to the longest in a batch, truncate at max_seq_length.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer = tokenizer

        weights = SafeTensors(folder / "model.safetensors")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def w(name: str) -> numpy.ndarray:
            return weights.read(prefix + name)

        def linear(name: str) -> numpy.ndarray:
            # Linear layers store (out, in); x @ W.T wants (in, out), contiguous for the fastest BLAS path.
            return np.ascontiguousarray(w(name).T)

        # The word table (47 MB) stays memory-mapped: a query reads only the rows of its own tokens.
        self.word = weights.mapped(prefix + "embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type = np.ascontiguousarray(w("embeddings.token_type_embeddings.weight")[0])
        self.embed_norm = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.blocks: list[dict[str, Any]] = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # One (hidden, 3*hidden) matrix for query, key and value: one matmul instead of three.
            qkv = np.concatenate(
                [w(p + f"attention.self.{part}.weight") for part in ("query", "key", "value")]
            ).T.copy()
            qkv_bias = np.concatenate(
                [w(p + f"attention.self.{part}.bias") for part in ("query", "key", "value")]
            )
            self.blocks.append(
                {
                    "qkv": qkv,
                    "qkv_bias": qkv_bias,
                    "out": linear(p + "attention.output.dense.weight"),
                    "out_bias": w(p + "attention.output.dense.bias"),
                    "norm1": (
                        w(p + "attention.output.LayerNorm.weight"),
                        w(p + "attention.output.LayerNorm.bias"),
                    ),
                    "up": linear(p + "intermediate.dense.weight"),
                    "up_bias": w(p + "intermediate.dense.bias"),
                    "down": linear(p + "output.dense.weight"),
                    "down_bias": w(p + "output.dense.bias"),
                    "norm2": (w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
                }
            )

    @property
    def dimension(self) -> int:
        return self.hidden

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        # sentence-transformers strips each text before tokenizing.
        return [encoding.ids for encoding in self.tokenizer.encode_batch([t.strip() for t in texts])]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> numpy.ndarray:
        """Unit-length float32 sentence vectors, one row per text, in the order given."""
        import numpy as np

        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for batch in self._batches(order, ids, batch_size):
            out[batch] = self._forward([ids[i] for i in batch])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out

    def _batches(self, order: list[int], ids: list[list[int]], batch_size: int) -> list[list[int]]:
        """Consecutive runs of the length-sorted texts, within ``batch_size`` and the memory budgets."""
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            length = len(ids[index])  # the longest so far: the order is ascending
            size = len(current) + 1
            attention = size * self.heads * length * length * 4
            if current and (
                size > batch_size or attention > ATTENTION_BUDGET_BYTES or size * length > TOKEN_BUDGET
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _forward(self, batch: list[list[int]]) -> numpy.ndarray:
        """Mean-pooled (not yet normalised) last hidden states of one batch of token id lists."""
        import numpy as np

        size, length = len(batch), max(len(ids) for ids in batch)
        tokens = np.zeros((size, length), dtype=np.int64)
        mask = np.zeros((size, length), dtype=np.float32)
        for row, ids in enumerate(batch):
            tokens[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        # Padded keys get a large negative score, so softmax gives them no weight (as transformers does).
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]

        h = self.word[tokens] + self.position[:length] + self.token_type
        h = _layer_norm(h.reshape(size * length, self.hidden), *self.embed_norm, self.eps)
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        for block in self.blocks:
            qkv = h @ block["qkv"]
            qkv += block["qkv_bias"]
            # (tokens, 3*hidden) -> three contiguous (batch, heads, length, head_dim) arrays: numpy's
            # stacked matmul uses BLAS only for contiguous operands (a strided one takes a slow loop).
            qkv = np.ascontiguousarray(
                qkv.reshape(size, length, 3, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
            )
            query, key, value = qkv[0], qkv[1], qkv[2]
            # One 2-D matmul per (text, head): numpy's stacked matmul takes a slow non-BLAS loop when an
            # operand is transposed, and 12 heads x a batch is only a few hundred calls.
            scores = np.empty((size, self.heads, length, length), dtype=np.float32)
            for b in range(size):
                for head in range(self.heads):
                    np.matmul(query[b, head], key[b, head].T, out=scores[b, head])
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = np.ascontiguousarray((scores @ value).transpose(0, 2, 1, 3)).reshape(
                size * length, self.hidden
            )
            attended = context @ block["out"]
            attended += block["out_bias"]
            attended += h
            h = _layer_norm(attended, *block["norm1"], self.eps)
            inner = h @ block["up"]
            inner += block["up_bias"]
            inner = _gelu(inner)
            projected = inner @ block["down"]
            projected += block["down_bias"]
            projected += h
            h = _layer_norm(projected, *block["norm2"], self.eps)
        h = h.reshape(size, length, self.hidden)
        summed = (mask[:, None, :] @ h)[:, 0]
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
