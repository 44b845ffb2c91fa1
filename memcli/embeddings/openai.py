"""Any OpenAI-compatible embeddings endpoint: OpenAI, Ollama (``/v1``), vLLM, Hugging Face TEI.

``POST {base_url}/embeddings`` with ``{"model": ..., "input": [texts]}``; the answer's ``data[i].embedding``
rows are put back in ``data[i].index`` order. Texts go in batches; 429 and 5xx answers (and dropped
connections) are retried with exponential backoff, honouring ``Retry-After``; every request has a timeout.
The API key is read from the environment variable named by ``[embedding] api_key_env`` (default
OPENAI_API_KEY) and is never printed. Uses only the standard library.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, ConnectError
from memcli.schema import names

if TYPE_CHECKING:
    import numpy

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = names.DEFAULT_OPENAI_MODEL
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 30.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible HTTP endpoint."""

    lexical = False

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        dimension: int | None = None,
        batch_size: int = 64,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model_name = model or DEFAULT_MODEL
        self.name = self.model_name
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.batch_size = max(1, batch_size)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self._sleep = sleep
        self._configured_dimension = dimension
        self._dimension = dimension or KNOWN_DIMENSIONS.get(self.model_name)
        self.requests_made = 0
        self.retries = 0

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            # Unknown model and no [embedding] dimension: ask the endpoint once.
            self._dimension = int(self._request(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        from memcli.embeddings import normalise

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = self.batch_size
        parts = [self._request(list(texts[i : i + step])) for i in range(0, len(texts), step)]
        matrix = np.vstack(parts)
        if self._dimension is None:
            self._dimension = int(matrix.shape[1])
        elif matrix.shape[1] != self._dimension:
            raise ConfigError(
                f"the endpoint returned {matrix.shape[1]}-dimensional vectors for {self.model_name!r}, "
                f"expected {self._dimension}",
                hint="fix [embedding] dimension in memcli.toml (or remove it to use the model's own)",
            )
        # OpenAI's vectors are unit length already; Ollama's and TEI's may not be.
        return normalise(matrix)

    # -- HTTP -------------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "memcli"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self.base_url.startswith("https://api.openai.com"):
            raise ConfigError(
                f"no API key: the environment variable {self.api_key_env} is not set",
                hint=f"export {self.api_key_env}=... (or name another variable in [embedding] api_key_env)",
            )
        return headers

    def _payload(self, texts: list[str]) -> bytes:
        body: dict[str, Any] = {"model": self.model_name, "input": texts}
        # Only OpenAI's text-embedding-3 models can shorten their vectors; other servers reject the field.
        if self._configured_dimension and self.model_name.startswith("text-embedding-3"):
            body["dimensions"] = self._configured_dimension
        return json.dumps(body).encode("utf-8")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_BACKOFF_SECONDS)
        delay = self.backoff_base * (2**attempt)
        return min(delay * (0.5 + random.random() / 2), MAX_BACKOFF_SECONDS)

    def _request(self, texts: list[str]) -> numpy.ndarray:
        url = f"{self.base_url}/embeddings"
        data = self._payload(texts)
        headers = self._headers()
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            self.requests_made += 1
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return self._parse(response.read(), len(texts))
            except urllib.error.HTTPError as exc:
                status = exc.code
                detail = _error_detail(exc)
                if status not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise _http_error(status, detail, url, self.api_key_env) from None
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt >= self.max_retries:
                    reason = getattr(exc, "reason", exc)
                    raise ConnectError(
                        f"cannot reach the embedding endpoint {url}: {reason}",
                        hint="check [embedding] base_url and that the server is up",
                    ) from None
            self.retries += 1
            self._sleep(self._backoff(attempt, retry_after))
            attempt += 1

    def _parse(self, raw: bytes, expected: int) -> numpy.ndarray:
        import numpy as np

        try:
            body = json.loads(raw)
            rows = sorted(body["data"], key=lambda item: item.get("index", 0))
            vectors = [row["embedding"] for row in rows]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"the embedding endpoint {self.base_url} did not answer in the OpenAI format",
                hint="base_url must be the API root that serves POST /embeddings (for Ollama: http://host:11434/v1)",
            ) from None
        if len(vectors) != expected:
            raise ConfigError(f"the embedding endpoint returned {len(vectors)} vectors for {expected} texts")
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model_name!r}, base_url={self.base_url!r})"


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")
    if isinstance(error, str):
        return error
    return str(exc.reason or "")


def _http_error(status: int, detail: str, url: str, key_env: str) -> Exception:
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        return ConnectError(
            f"the embedding endpoint {url} refused the credentials (HTTP {status}){suffix}",
            hint=f"check the API key in {key_env}",
        )
    if status in RETRY_STATUSES:
        return ConnectError(
            f"the embedding endpoint {url} kept failing (HTTP {status}){suffix}", hint="retry later"
        )
    return ConfigError(
        f"the embedding endpoint {url} rejected the request (HTTP {status}){suffix}",
        hint="check [embedding] model and base_url",
    )
