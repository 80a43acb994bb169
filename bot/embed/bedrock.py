"""Bedrock embeddings through InvokeModel, spread over the Bedrock regions by the region scheduler.

Titan Text Embeddings v2 takes one text per call; Cohere Embed v3 (``cohere.embed-multilingual-v3``, strong on
Korean) takes up to 96, so each of its calls is a batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from bot.config import Settings
from bot.embed import COHERE_TEXTS_PER_CALL, embedder_spec
from bot.embed.base import clip_utf8
from bot.llm.bedrock import bedrock_clients, bedrock_scheduler, call_bedrock
from bot.llm.scheduler import Reply, RequestError, SchedulerError

# Titan v2 takes at most 8,192 tokens and 50,000 characters; 8,000 UTF-8 bytes stays under both for any script.
MAX_INPUT_BYTES = 8_000
# Cohere Embed v3 takes at most 2,048 characters per text (and 512 tokens: "truncate": "END" cuts the rest).
COHERE_MAX_CHARS = 2_048
COHERE_DIMENSION = 1024


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def embed_all(
    texts: Sequence[str], embed_unique: Callable[[list[str]], dict[str, np.ndarray]], dimension: Callable[[], int]
) -> np.ndarray:
    """Normalized vectors for ``texts`` in order, each distinct non-blank text embedded once by ``embed_unique``."""
    unique = list(dict.fromkeys(text for text in texts if text.strip()))
    vectors = embed_unique(unique) if unique else {}
    width = len(next(iter(vectors.values()))) if vectors else dimension()
    out = np.zeros((len(texts), width), dtype=np.float32)  # a blank text keeps a zero vector: nothing to embed
    for row, text in enumerate(texts):
        if text in vectors:
            out[row] = vectors[text]
    return normalized(out)


class BedrockEmbedder:
    """Titan v2 (``settings.bedrock_embed_model``) at ``settings.bedrock_embed_dimension``, normalized vectors."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.bedrock_embed_model
        self.dimension = settings.bedrock_embed_dimension
        self.name = embedder_spec(settings).name
        self._clients = bedrock_clients(settings)
        # its own scheduler: Bedrock's quotas are per model, so embedding calls do not eat the chat model's limit
        self._scheduler = bedrock_scheduler(settings, self.model)

    def _embed(self, region: str, text: str) -> Reply:
        body = json.dumps({"inputText": clip_utf8(text, MAX_INPUT_BYTES), "dimensions": self.dimension,
                           "normalize": True})
        response = call_bedrock(
            self._clients[region].invoke_model,
            modelId=self.model, body=body, contentType="application/json", accept="application/json",
        )
        payload = json.loads(response["body"].read())
        vector = np.asarray(payload.get("embedding") or [], dtype=np.float32)
        if vector.shape != (self.dimension,):
            raise RequestError(f"expected {self.dimension} dimensions, got {vector.shape}")
        return Reply(vector, payload.get("inputTextTokenCount", 0), 0)

    def _embed_unique(self, texts: list[str]) -> dict[str, np.ndarray]:
        results, failures = self._scheduler.map(texts, self._embed)
        if failures:
            first = next(iter(failures.values()))
            raise SchedulerError(f"{len(failures)} of {len(texts)} texts could not be embedded; {first}")
        return {texts[i]: vector for i, vector in results.items()}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dimension), the calls spread over the regions."""
        return embed_all(texts, self._embed_unique, lambda: self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        """Vector of shape (dimension,) for a search query."""
        vector: np.ndarray = self.embed_documents([text])[0]
        return vector

    def close(self) -> None:
        """Nothing to release: HTTP connections close with the process."""

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens, errors, throttles and seconds per region since creation."""
        return self._scheduler.usage()


class CohereEmbedder:
    """Cohere Embed v3 (``settings.bedrock_embed_model``): batches of up to 96 texts a call, 1024 dimensions.

    Documents are embedded as ``search_document`` and queries as ``search_query`` (Cohere prepends a different
    marker to each). Every text is cut to its first 2,048 characters here, and ``truncate: END`` lets the model
    drop what still exceeds its 512 tokens: both cuts are deterministic, so vectors cached by text stay valid.
    """

    dimension = COHERE_DIMENSION

    def __init__(self, settings: Settings) -> None:
        self.model = settings.bedrock_embed_model
        self.name = embedder_spec(settings).name
        self._clients = bedrock_clients(settings)
        self._scheduler = bedrock_scheduler(settings, self.model)

    def _embed_batch(self, region: str, batch: tuple[str, list[str]]) -> Reply:
        input_type, texts = batch
        body = json.dumps({"texts": [text[:COHERE_MAX_CHARS] for text in texts], "input_type": input_type,
                           "truncate": "END"})
        response = call_bedrock(
            self._clients[region].invoke_model,
            modelId=self.model, body=body, contentType="application/json", accept="application/json",
        )
        try:
            payload = json.loads(response["body"].read())
            vectors = np.asarray(payload["embeddings"], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise RequestError("unexpected Cohere embed response") from None
        if vectors.shape != (len(texts), self.dimension):
            raise RequestError(f"asked for {len(texts)} embeddings of {self.dimension}, got shape {vectors.shape}")
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        tokens = headers.get("x-amzn-bedrock-input-token-count", "0")
        return Reply(vectors, int(tokens) if str(tokens).isdigit() else 0, 0)

    def _embed_unique(self, texts: list[str], input_type: str) -> dict[str, np.ndarray]:
        batches = [(input_type, texts[start:start + COHERE_TEXTS_PER_CALL])
                   for start in range(0, len(texts), COHERE_TEXTS_PER_CALL)]
        results, failures = self._scheduler.map(batches, self._embed_batch)
        if failures:
            first = next(iter(failures.values()))
            raise SchedulerError(f"{len(failures)} of {len(batches)} embedding batches failed; {first}")
        out: dict[str, np.ndarray] = {}
        for index, vectors in results.items():
            out.update(zip(batches[index][1], vectors, strict=True))
        return out

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), 1024), in order; the batches spread over the regions."""
        return embed_all(texts, lambda unique: self._embed_unique(unique, "search_document"), lambda: self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        """Vector of shape (1024,) for a search query."""
        vector: np.ndarray = embed_all([text], lambda unique: self._embed_unique(unique, "search_query"),
                                       lambda: self.dimension)[0]
        return vector

    def close(self) -> None:
        """Nothing to release: HTTP connections close with the process."""

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls (each a batch), tokens, errors, throttles and seconds per region since creation."""
        return self._scheduler.usage()
