"""Real all-MiniLM-L6-v2 embeddings of the demo generator's texts, embedded once and cached outside git.

The demo generator (memcli.seed.demo) writes varied memory texts: orders, bookings, reviews, preferences,
opening-hours answers, each naming one of thousands of businesses, dishes, prices and dates. Many sessions
give many distinct texts; this module keeps the first ``rows + queries`` distinct ones (in the generator's
order, so the same seed gives the same set), embeds them with memcli's local embedder and caches
``texts.json`` + ``vectors.npy`` in ``~/.cache/memcli-bench/`` (or ``MEMCLI_BENCH_CACHE``). The last
``queries`` texts are held out as queries: they are not in the indexed set, as a user's question is not.

Build the asset on its own (it takes a while on a busy machine; run it niced):

    nice -n 10 .venv/bin/python benchmarks/real_vectors.py --rows 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SEED = 11
CHUNK = 1024
PROCESSES = 2
_EMBEDDER: Any = None


def _init_worker() -> None:
    global _EMBEDDER
    import torch

    from memcli.embeddings.local import LocalEmbedder

    torch.set_num_threads(1)
    _EMBEDDER = LocalEmbedder(MODEL, batch_size=64)


def _embed(texts: list[str]) -> np.ndarray:
    return _EMBEDDER.embed(texts)


def cache_dir() -> Path:
    return Path(os.environ.get("MEMCLI_BENCH_CACHE", Path.home() / ".cache" / "memcli-bench"))


def asset_path(rows: int, queries: int) -> Path:
    return cache_dir() / f"minilm-demo-{rows}-{queries}-seed{SEED}"


def distinct_texts(wanted: int) -> list[str]:
    """The first ``wanted`` distinct semantic-memory texts of demo datasets (seeds SEED, SEED+1, ...)."""
    from memcli.seed.demo import generate_demo

    seen: dict[str, None] = {}
    seed = SEED
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    while len(seen) < wanted:
        data = generate_demo(businesses=3000, sessions=60_000, random_seed=seed, base_time=base)
        for row in data.semantic:
            seen.setdefault(row[4], None)
        print(f"  seed {seed}: {len(seen):,} distinct texts", file=sys.stderr, flush=True)
        seed += 1
    return list(seen)[:wanted]


def _parts(folder: Path, rows: int, queries: int, texts: list[str]) -> list[tuple[Path, list[str]]]:
    """The embedding work in chunks, each cached as its own file: the queries first, then the rows in
    order, so an interrupted or unfinished build still leaves a usable prefix (``partial``)."""
    out = [(folder / "parts" / "queries.npy", texts[rows : rows + queries])]
    for start in range(0, rows, CHUNK):
        out.append((folder / "parts" / f"rows-{start:08d}.npy", texts[start : min(rows, start + CHUNK)]))
    return out


def load_or_build(rows: int, queries: int, *, partial: bool = False) -> tuple[list[str], np.ndarray]:
    """(texts, float32 unit vectors) of ``rows + queries`` distinct texts (queries last).

    The asset is built if missing (resuming from the chunks already cached); with ``partial`` nothing is
    built and the cached prefix of the rows is returned with the queries (fewer rows than asked).
    """
    folder = asset_path(rows, queries)
    if (folder / "vectors.npy").exists():
        texts = json.loads((folder / "texts.json").read_text())
        return texts, np.load(folder / "vectors.npy")
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if (folder / "texts.json").exists():
        texts = json.loads((folder / "texts.json").read_text())
    else:
        texts = distinct_texts(rows + queries)
        (folder / "texts.json").write_text(json.dumps(texts))
    parts = _parts(folder, rows, queries, texts)
    if partial:
        done = []
        for path, _ in parts[1:]:
            if not path.exists():
                break
            done.append(np.load(path))
        base = np.concatenate(done) if done else np.zeros((0, 384), np.float32)
        query = np.load(parts[0][0])
        return texts[: len(base)] + texts[rows : rows + queries], np.concatenate([base, query])
    todo = [(path, chunk) for path, chunk in parts if not path.exists()]
    print(
        f"{len(texts):,} texts in {time.perf_counter() - started:.0f} s; {len(todo)} chunks to embed",
        file=sys.stderr,
    )
    started = time.perf_counter()
    embedded = 0
    # One torch thread per process: on a busy machine two single-threaded processes embed about twice as
    # fast as one process with two threads (measured: 8 ms vs 20 ms of CPU per text).
    with multiprocessing.get_context("spawn").Pool(PROCESSES, initializer=_init_worker) as pool:
        for (path, chunk), vectors in zip(todo, pool.imap(_embed, [c for _, c in todo]), strict=True):
            np.save(path, vectors)
            embedded += len(chunk)
            rate = embedded / (time.perf_counter() - started)
            print(f"  embedded {embedded:,} more ({rate:,.0f}/s); {path.name}", file=sys.stderr, flush=True)
    vectors = np.concatenate([np.load(path) for path, _ in parts[1:]] + [np.load(parts[0][0])])
    np.save(folder / "vectors.npy", vectors.astype(np.float32))
    (folder / "README").write_text(
        f"{MODEL} embeddings of {len(texts)} distinct memcli demo texts (seed {SEED}); the last {queries} "
        f"are queries. Built by benchmarks/real_vectors.py.\n"
    )
    return texts, vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    texts, vectors = load_or_build(args.rows, args.queries)
    print(f"{asset_path(args.rows, args.queries)}: {len(texts):,} texts, vectors {vectors.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
