"""A BERT sentence encoder in numpy: the all-MiniLM-L6-v2 forward pass without PyTorch.

It reads a sentence-transformers model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``sentence_bert_config.json``) and computes what sentence-transformers computes for a Transformer + mean
Pooling + Normalize model: WordPiece tokens (the ``tokenizers`` package, the same Rust tokenizer
transformers uses), truncated to ``max_seq_length`` tokens including [CLS] and [SEP]; the BERT encoder
(embeddings, then per layer self-attention and a GELU feed-forward, each followed by a residual LayerNorm);
the mean of each text's token vectors; L2 normalisation. The vectors equal
sentence-transformers' to a cosine of 1 - 1e-6 (tests/test_embeddings_bert.py holds reference vectors).

Why numpy: the model is 22M parameters and six layers; a float32 matmul per weight matrix is all the work,
and numpy's BLAS does it as fast as torch on a CPU. The weights are memory-mapped from the safetensors file,
so the 47 MB word-embedding table costs only the rows a text uses, and nothing is converted or copied at
start-up.

Nothing is padded: a batch's tokens are packed into one (tokens x hidden) array for the matrix products,
which work token by token, and attention runs on each run of equal-length texts (texts are sorted by token
count) as one stacked product, so no mask is needed either. A batch is capped by its token count and an
attention run by the size of its score array, so memory stays bounded whatever the texts.

Several batches run at once, one per core, each in its own thread with numpy's BLAS held to one thread
(``threadpoolctl``): a core then goes from one matrix product to the element-wise steps after it without
waiting for the other cores, which a multithreaded BLAS makes it do at every step.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import mmap
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcli.forksafe import ForkSafeLock

if TYPE_CHECKING:
    import numpy

# Largest attention-score array (batch x heads x length x length float32) one batch may build, and most
# tokens per batch: together they bound a batch's memory to a few tens of MB for any text lengths.
ATTENTION_BUDGET_BYTES = 16 * 1024 * 1024
TOKEN_BUDGET = 8192
BLOCK_VALUES = 32_768  # 128 kB of float32 per block: a block's few temporaries stay in L2

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


def _layer_norm(x: numpy.ndarray, weight: numpy.ndarray, bias: numpy.ndarray, eps: float) -> None:
    """LayerNorm over the last axis, in place."""
    import numpy as np

    x -= x.mean(axis=-1, keepdims=True)
    variance = np.square(x).mean(axis=-1, keepdims=True)
    variance += eps
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias


def _add_layer_norm_block(
    x: numpy.ndarray,
    bias: numpy.ndarray,
    residual: numpy.ndarray,
    norm: tuple[numpy.ndarray, numpy.ndarray],
    eps: float,
) -> None:
    """LayerNorm(x + bias + residual) in place: a BERT sublayer's output, on one block of rows."""
    x += bias
    x += residual
    _layer_norm(x, *norm, eps)


# Abramowitz & Stegun 7.1.26: erf(z) = 1 - t (a1 + a2 t + ... + a5 t^4) exp(-z^2), t = 1 / (1 + p z), z >= 0,
# to 1.5e-7 absolute, within float32's own rounding of GELU's inputs.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu_constants() -> tuple[float, tuple[float, ...], float]:
    """The polynomial rewritten for the fewest passes over an array, for GELU's argument m = |x|.

    z = m / sqrt 2, so t = c s with c = sqrt 2 / p and s = 1 / (m + c). In s the polynomial is
    b5 s (s^4 + r4 s^3 + r3 s^2 + r2 s + r1) with b_i = a_i c^i and r_i = b_i / b5; the factor b5 / 2 (Phi
    is half of erfc) goes into the exponent as a logarithm, where it costs no pass of its own.
    """
    c = math.sqrt(2) / _ERF_P
    b = [a * c ** (i + 1) for i, a in enumerate(_ERF_A)]
    return c, tuple(coefficient / b[4] for coefficient in b[:4]), math.log(b[4] / 2)


_GELU_SHIFT, _GELU_RATIOS, _GELU_LOG_SCALE = _gelu_constants()


def _gelu_block(x: numpy.ndarray, bias: numpy.ndarray) -> None:
    """BERT's exact GELU of x + bias, x * Phi(x), in place on one block; numpy has no erf, so a polynomial.

    With q = Phi(-|x|) = (1 - erf(|x| / sqrt 2)) / 2, x * Phi(x) = max(x, 0) - |x| * q for either sign.
    Twenty element-wise passes, each over the block while it is in the cache.
    """
    import numpy as np

    x += bias
    magnitude = np.abs(x)
    s = magnitude + np.float32(_GELU_SHIFT)
    np.reciprocal(s, out=s)
    r1, r2, r3, r4 = (np.float32(r) for r in _GELU_RATIOS)
    q = s + r4
    for coefficient in (r3, r2, r1):
        q *= s
        q += coefficient
    q *= s
    e = np.square(x, out=s)  # exp(-x^2 / 2) times the polynomial's scale, in the buffer of s
    e *= np.float32(-0.5)
    e += np.float32(_GELU_LOG_SCALE)
    np.exp(e, out=e)
    q *= e
    q *= magnitude
    np.maximum(x, np.float32(0.0), out=x)
    x -= q


def _in_blocks(x: numpy.ndarray, work: Callable[[slice], None]) -> None:
    """``work`` on each block of x's rows, small enough to stay in the CPU cache.

    Element-wise steps (GELU's twenty passes, LayerNorm's ten) then cost a cache pass each rather than a
    memory pass each.
    """
    block = max(1, BLOCK_VALUES // x.shape[1])
    for start in range(0, x.shape[0], block):
        work(slice(start, start + block))


def _cores() -> int:
    """The CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


# The BLAS limit is the process's, not the thread's: two encodes setting and restoring it at once could
# leave it at one thread, so they take turns.
_BLAS_LIMIT = ForkSafeLock()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[bool]:
    """numpy's BLAS limited to one thread for the duration; False (nothing changed) without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with _BLAS_LIMIT, threadpool_limits(limits=1, user_api="blas"):
        yield True


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
        self.intermediate = int(config["intermediate_size"])
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
            # The attention scale 1 / sqrt(head_dim) is folded into the query's weights and bias.
            scale = [1.0 / math.sqrt(self.head_dim), 1.0, 1.0]
            parts = ("query", "key", "value")
            qkv = np.concatenate(
                [
                    w(p + f"attention.self.{part}.weight") * np.float32(k)
                    for part, k in zip(parts, scale, strict=True)
                ]
            ).T.copy()
            qkv_bias = np.concatenate(
                [
                    w(p + f"attention.self.{part}.bias") * np.float32(k)
                    for part, k in zip(parts, scale, strict=True)
                ]
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
        # sentence-transformers strips each text before tokenizing. One text at a time, not encode_batch:
        # its thread pool does not survive a fork (a re-embed's backfill encodes in a forked process; the
        # tokenizers package then falls back to one thread, but with TOKENIZERS_PARALLELISM=true it waits
        # for the lost pool forever), and the tokens are about 1% of the work (66 ms against 49 ms for
        # 1000 texts, whose vectors take 6 s on two cores).
        encode = self.tokenizer.encode
        return [encode(t.strip()).ids for t in texts]

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> numpy.ndarray:
        """Unit-length float32 sentence vectors, one row per text, in the order given.

        Batches run one per core, as the module's docstring says; only that many are in flight at once,
        so memory stays bounded.
        """
        import numpy as np

        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        # Longest first: the last batches, while the other threads finish, are then the quickest.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        workers = _cores()
        # Small inputs are split so that every core gets a batch.
        batches = self._batches(order, ids, min(batch_size, -(-len(texts) // workers)))

        def run(batch: list[int]) -> None:
            out[batch] = self._forward([ids[i] for i in batch])

        with contextlib.ExitStack() as stack:
            if len(batches) > 1 and workers > 1 and stack.enter_context(_one_blas_thread()):
                from concurrent.futures import ThreadPoolExecutor

                pool = stack.enter_context(
                    ThreadPoolExecutor(
                        max_workers=min(workers, len(batches)), thread_name_prefix="memcli-bert"
                    )
                )
                list(pool.map(run, batches))
            else:
                for batch in batches:
                    run(batch)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out

    def _batches(self, order: list[int], ids: list[list[int]], batch_size: int) -> list[list[int]]:
        """Consecutive runs of the length-sorted texts, within ``batch_size`` texts and ``TOKEN_BUDGET``."""
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for index in order:
            length = len(ids[index])
            if current and (len(current) >= batch_size or tokens + length > TOKEN_BUDGET):
                batches.append(current)
                current, tokens = [], 0
            current.append(index)
            tokens += length
        if current:
            batches.append(current)
        return batches

    def _groups(self, lengths: Sequence[int]) -> list[tuple[int, int, int]]:
        """(first row, texts, length) of each run of consecutive texts of one length, cut so that a run's
        attention scores (texts x heads x length x length float32) stay within ``ATTENTION_BUDGET_BYTES``."""
        groups: list[tuple[int, int, int]] = []
        row = 0
        for length, run in itertools.groupby(lengths):
            count = sum(1 for _ in run)
            most = max(1, ATTENTION_BUDGET_BYTES // (self.heads * length * length * 4))
            while count:
                taken = min(count, most)
                groups.append((row, taken, length))
                row += taken * length
                count -= taken
        return groups

    def _forward(self, batch: list[list[int]]) -> numpy.ndarray:
        """Mean-pooled (not yet normalised) last hidden states of one batch of token id lists.

        The tokens of all texts are packed into one (tokens x hidden) array, without padding: every layer
        but attention works token by token, so a padded token would be pure waste. Attention runs on each
        run of texts of equal length (the batch is sorted by length) as one stacked matmul, so no text ever
        sees another's tokens and no mask is needed.
        """
        import numpy as np

        lengths = [len(ids) for ids in batch]
        total = sum(lengths)
        tokens = np.fromiter(itertools.chain.from_iterable(batch), dtype=np.intp, count=total)
        starts = np.zeros(len(batch), dtype=np.intp)
        np.cumsum(lengths[:-1], out=starts[1:])
        positions = np.arange(total) - np.repeat(starts, lengths)

        h = self.word[tokens]
        h += self.position[positions]
        h += self.token_type
        _layer_norm(h, *self.embed_norm, self.eps)
        groups = self._groups(lengths)
        heads, head_dim = self.heads, self.head_dim
        # Buffers for the whole pass, reused by every layer: the query-key-value product and the
        # feed-forward's inner activations are never needed at once, so they share one.
        shared = np.empty(total * max(3 * self.hidden, self.intermediate), dtype=np.float32)
        qkv = shared[: total * 3 * self.hidden].reshape(total, 3 * self.hidden)
        inner = shared[: total * self.intermediate].reshape(total, self.intermediate)
        context = np.empty_like(h)
        spare = np.empty_like(h)
        for block in self.blocks:
            np.matmul(h, block["qkv"], out=qkv)
            qkv += block["qkv_bias"]
            for row, count, length in groups:
                rows = slice(row, row + count * length)
                part = qkv[rows].reshape(count, length, 3, heads, head_dim)
                # Each head's query, key and value are strided views of the packed rows, and its context is
                # written straight into the packed output: numpy hands such views to BLAS with a leading
                # dimension, no copy. The query weights carry the scale 1 / sqrt(head_dim).
                scores = np.matmul(part[:, :, 0].transpose(0, 2, 1, 3), part[:, :, 1].transpose(0, 2, 3, 1))
                row_stat = scores.max(axis=-1, keepdims=True)
                scores -= row_stat
                np.exp(scores, out=scores)
                np.sum(scores, axis=-1, keepdims=True, out=row_stat)
                np.reciprocal(row_stat, out=row_stat)
                scores *= row_stat
                np.matmul(
                    scores,
                    part[:, :, 2].transpose(0, 2, 1, 3),
                    out=context[rows].reshape(count, length, heads, head_dim).transpose(0, 2, 1, 3),
                )
                del scores
            np.matmul(context, block["out"], out=spare)
            h, spare = self._sublayer(spare, block["out_bias"], h, block["norm1"]), h
            np.matmul(h, block["up"], out=inner)
            _in_blocks(inner, lambda rows, x=inner, b=block["up_bias"]: _gelu_block(x[rows], b))
            np.matmul(inner, block["down"], out=spare)
            h, spare = self._sublayer(spare, block["down_bias"], h, block["norm2"]), h
        pooled = np.add.reduceat(h, starts, axis=0)
        pooled /= np.asarray(lengths, dtype=np.float32)[:, None]
        return pooled

    def _sublayer(
        self,
        x: numpy.ndarray,
        bias: numpy.ndarray,
        residual: numpy.ndarray,
        norm: tuple[numpy.ndarray, numpy.ndarray],
    ) -> numpy.ndarray:
        """LayerNorm(x + bias + residual), in place in x, block by block."""
        _in_blocks(x, lambda rows: _add_layer_norm_block(x[rows], bias, residual[rows], norm, self.eps))
        return x
