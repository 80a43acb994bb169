"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (Ollama, vLLM, …), normalized here.

The dimension is discovered, not configured: from the first response, or — when ``dimension`` is read before
any text was embedded — from a one-word probe request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from bot.config import Settings
from bot.embed.base import clip_utf8
from bot.embed.bedrock import embed_all
from bot.llm.openai import OpenAICompatibleClient
from bot.llm.scheduler import Reply, RequestError, SchedulerError

BATCH = 32  # texts per request; batches are spread over the base URLs


class OpenAIEmbedder:
    """``settings.openai_embed_model`` on the configured base URLs; L2-normalized float32 vectors."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_embed_model
        self.name = f"openai:{self.model}"
        self.max_bytes = settings.openai_embed_max_bytes  # inputs are cut to this many UTF-8 bytes
        self._client = OpenAICompatibleClient(settings, self.model)
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """Width of the vectors (probed with one request if nothing was embedded yet)."""
        if self._dimension is None:
            self.embed_documents(["dimension"])
        assert self._dimension is not None
        return self._dimension

    def _embed_batch(self, region: str, batch: list[str]) -> Reply:
        inputs = [clip_utf8(text, self.max_bytes) for text in batch]
        payload = self._client.post(region, "embeddings", {"model": self.model, "input": inputs})
        try:
            rows = sorted(payload["data"], key=lambda row: row.get("index", 0))
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise RequestError(f"unexpected embeddings reply: {str(payload)[:200]}") from None
        if vectors.ndim != 2 or len(vectors) != len(batch):
            raise RequestError(f"asked for {len(batch)} embeddings, got shape {vectors.shape}")
        with self._lock:
            if self._dimension is None:
                self._dimension = vectors.shape[1]
            elif vectors.shape[1] != self._dimension:
                raise RequestError(f"expected {self._dimension} dimensions, got {vectors.shape[1]}")
        usage = payload.get("usage") or {}
        return Reply(vectors, usage.get("prompt_tokens", 0), 0)

    def _embed_unique(self, texts: list[str]) -> dict[str, np.ndarray]:
        batches = [texts[start:start + BATCH] for start in range(0, len(texts), BATCH)]
        results, failures = self._client.scheduler.map(batches, self._embed_batch)
        if failures:
            first = next(iter(failures.values()))
            raise SchedulerError(f"{len(failures)} of {len(batches)} embedding batches failed; {first}")
        out: dict[str, np.ndarray] = {}
        for index, vectors in results.items():
            out.update(zip(batches[index], vectors, strict=True))
        return out

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dimension)."""
        return embed_all(texts, self._embed_unique, lambda: self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        """Vector of shape (dimension,) for a search query."""
        vector: np.ndarray = self.embed_documents([text])[0]
        return vector

    def close(self) -> None:
        """Nothing to release: HTTP connections close with the process."""

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens, errors, throttles and seconds per base URL (``openai-1``, … by position) since creation."""
        return self._client.scheduler.usage()
