"""Embedding providers: choice by flag/env/config, the hashing embedder, an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memcli.config import load_config
from memcli.embeddings import Embedder, get_embedder
from memcli.embeddings.hashing import HashingEmbedder
from memcli.embeddings.local import DEFAULT_MODEL, LocalEmbedder
from memcli.embeddings.openai import OpenAIEmbedder
from memcli.errors import ConfigError, ConnectError


def write_config(workdir: Path, text: str) -> Any:
    (workdir / "memcli.toml").write_text(text)
    return load_config()


# -- choosing a provider ---------------------------------------------------------------------------------


def test_env_chooses_hashing_by_default_in_tests() -> None:
    embedder = get_embedder()
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.name == "hashing-v1"
    assert embedder.dimension == 384
    assert isinstance(embedder, Embedder)


def test_argument_beats_env_and_config(isolated_env: Path) -> None:
    config = write_config(isolated_env, '[embedding]\nprovider = "openai"\nmodel = "nomic-embed-text"\n')
    assert isinstance(get_embedder(config), HashingEmbedder)  # MEMCLI_EMBEDDER=hashing
    local = get_embedder(config, provider="local")
    assert isinstance(local, LocalEmbedder)
    assert local.name == DEFAULT_MODEL  # the config's model belongs to its provider, openai


def test_config_file_chooses_provider_and_options(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMCLI_EMBEDDER")
    config = write_config(
        isolated_env,
        '[embedding]\nprovider = "openai"\nmodel = "nomic-embed-text"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "MY_KEY"\ndimension = 768\nbatch_size = 8\n',
    )
    embedder = get_embedder(config)
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dimension, embedder.batch_size) == ("nomic-embed-text", 768, 8)
    assert embedder.base_url == "http://127.0.0.1:9/v1"
    assert embedder.api_key_env == "MY_KEY"


def test_default_is_local_minilm_without_loading_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMCLI_EMBEDDER")
    embedder = get_embedder()
    assert isinstance(embedder, LocalEmbedder)
    assert (embedder.name, embedder.dimension) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    assert get_embedder(provider="local:all-MiniLM-L6-v2").name == DEFAULT_MODEL


def test_provider_with_model_suffix() -> None:
    embedder = get_embedder(provider="openai:nomic-embed-text:latest")
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.name == "nomic-embed-text:latest"


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown embedding provider 'word2vec'"):
        get_embedder(provider="word2vec")


def test_bad_dimension_in_config(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match="dimension"):
        write_config(isolated_env, '[embedding]\ndimension = "wide"\n')


# -- hashing ---------------------------------------------------------------------------------------------


def test_hashing_is_deterministic_normalised_and_lexical() -> None:
    embedder = HashingEmbedder(dimension=256)
    texts = ["Meat-free meals", "meat free meal", "quantum chromodynamics lecture", "", "!!!"]
    first = embedder.embed(texts)
    again = HashingEmbedder(dimension=256).embed(texts)
    assert first.shape == (5, 256) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    sims = first @ first.T
    assert sims[0, 1] > 0.6  # shared words and spellings
    assert abs(sims[0, 2]) < 0.2  # nothing in common
    assert embedder.embed([]).shape == (0, 256)


def test_hashing_is_stable_across_processes() -> None:
    # Python's own hash() is salted per process; stored vectors must not depend on it.
    vector = HashingEmbedder(dimension=8).embed(["hello world"])[0]
    import subprocess
    import sys

    code = (
        "from memcli.embeddings.hashing import HashingEmbedder as H; "
        "print(H(8).embed(['hello world'])[0].tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(vector, json.loads(out), rtol=1e-6)


# -- OpenAI-compatible endpoint ----------------------------------------------------------------------------


class FakeEmbeddingServer:
    """Speaks POST /v1/embeddings like OpenAI: answers in shuffled index order; scripted failures first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.dimension = 12
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.failures:
                    status, headers = server.failures.pop(0)
                    return self._send(status, {"error": {"message": "Rate limit reached"}}, headers)
                data = [
                    {"object": "embedding", "index": i, "embedding": server.vector(text)}
                    for i, text in enumerate(body["input"])
                ]
                data.reverse()  # the order of data is not guaranteed; index is
                self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": {}})

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def vector(self, text: str) -> list[float]:
        # Not unit length (as Ollama's are not): the client must normalise. Distinct per text.
        rng = np.random.default_rng(abs(hash(text)) % (2**32))
        return [float(x) * 3.0 for x in rng.normal(size=self.dimension)]


@pytest.fixture
def fake_server() -> Iterator[FakeEmbeddingServer]:
    server = FakeEmbeddingServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_openai_compatible_request_shape_batching_and_order(
    fake_server: FakeEmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test-123")
    embedder = OpenAIEmbedder(
        model="nomic-embed-text", base_url=fake_server.base_url, api_key_env="TEST_EMBED_KEY", batch_size=2
    )
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (5, 12) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert [r["input"] for r in fake_server.requests] == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]
    assert all(r["model"] == "nomic-embed-text" for r in fake_server.requests)
    assert "dimensions" not in fake_server.requests[0]
    assert fake_server.headers[0]["Authorization"] == "Bearer sk-test-123"
    # Rows come back in input order although the server answered in reverse.
    expected = np.asarray(fake_server.vector("gamma"), dtype=np.float32)
    np.testing.assert_allclose(vectors[2], expected / np.linalg.norm(expected), rtol=1e-5)
    assert embedder.dimension == 12


def test_openai_compatible_retries_429_then_succeeds(fake_server: FakeEmbeddingServer) -> None:
    fake_server.failures = [(429, {"Retry-After": "0.05"}), (503, {})]
    slept: list[float] = []
    embedder = OpenAIEmbedder(
        model="m", base_url=fake_server.base_url, dimension=12, backoff_base=0.01, sleep=slept.append
    )
    vectors = embedder.embed(["one", "two"])
    assert vectors.shape == (2, 12)
    assert len(fake_server.requests) == 3
    assert embedder.retries == 2
    assert slept[0] == pytest.approx(0.05)  # Retry-After honoured
    assert 0 < slept[1] <= 0.01 * 2  # then exponential backoff with jitter
    assert "Authorization" not in fake_server.headers[0]  # no key set: none sent (Ollama, vLLM, TEI)


def test_openai_compatible_gives_up_after_retries(fake_server: FakeEmbeddingServer) -> None:
    fake_server.failures = [(429, {"Retry-After": "0"})] * 5
    embedder = OpenAIEmbedder(model="m", base_url=fake_server.base_url, max_retries=2, sleep=lambda _: None)
    with pytest.raises(ConnectError, match=r"HTTP 429.*Rate limit reached"):
        embedder.embed(["x"])
    assert len(fake_server.requests) == 3


def test_openai_compatible_client_error_is_not_retried(fake_server: FakeEmbeddingServer) -> None:
    embedder = OpenAIEmbedder(model="m", base_url=fake_server.base_url + "/wrong", sleep=lambda _: None)
    with pytest.raises(ConfigError, match="HTTP 404"):
        embedder.embed(["x"])
    assert len(fake_server.requests) == 1


def test_openai_compatible_probes_unknown_dimension(fake_server: FakeEmbeddingServer) -> None:
    embedder = OpenAIEmbedder(model="some-new-model", base_url=fake_server.base_url)
    assert embedder.dimension == 12
    assert len(fake_server.requests) == 1


def test_openai_compatible_unreachable_is_a_connect_error() -> None:
    embedder = OpenAIEmbedder(
        model="m",
        base_url="http://127.0.0.1:9/v1",
        dimension=4,
        timeout=2,
        max_retries=1,
        sleep=lambda _: None,
    )
    with pytest.raises(ConnectError, match="cannot reach the embedding endpoint"):
        embedder.embed(["x"])


def test_openai_needs_a_key_for_api_openai_com(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIEmbedder().embed(["x"])
