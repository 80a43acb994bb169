"""Embedding backends: one module per provider behind ``Embedder``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.config import Settings
from bot.embed.base import Embedder
from bot.llm.prices import model_key

COHERE_TEXTS_PER_CALL = 96  # Cohere Embed v3 on Bedrock: at most 96 texts per InvokeModel call
OPENAI_TEXTS_PER_CALL = 32
LOCAL_BATCH = 64  # texts the indexer hands to the bundled model at once (progress and cache granularity)
MAX_BATCH = 3072


@dataclass(frozen=True)
class EmbedderSpec:
    """What the configured embedder is, known without building it (no model loaded, no credentials needed)."""

    name: str  # as ``Embedder.name``
    dimension: int | None  # None: discovered from the first response (OpenAI-compatible servers)
    model: str  # the model its calls are counted and priced under; "" when it runs in this process
    texts_per_call: int  # texts in one request; 0 when it makes no requests
    batch: int  # texts the indexer hands over per ``embed_documents`` call: enough to keep every region busy
    slots: int = 1  # requests in flight at most (regions × concurrency)


def is_cohere(model: str) -> bool:
    """True for the Cohere Embed models on Bedrock (``cohere.embed-multilingual-v3``, …), in any profile form."""
    return model_key(model).startswith("cohere.embed-")


def embedder_spec(settings: Settings) -> EmbedderSpec:
    """The spec of the embedder that ``RAGCODE_EMBEDDER`` names."""
    if settings.embedder == "bedrock":
        model = settings.bedrock_embed_model
        slots = len(settings.bedrock_regions) * settings.bedrock_concurrency
        if is_cohere(model):
            return EmbedderSpec(f"bedrock:{model}:1024", 1024, model, COHERE_TEXTS_PER_CALL,
                                min(MAX_BATCH, COHERE_TEXTS_PER_CALL * slots), slots)
        dimension = settings.bedrock_embed_dimension
        return EmbedderSpec(f"bedrock:{model}:{dimension}", dimension, model, 1,
                            min(MAX_BATCH, max(LOCAL_BATCH, slots)), slots)
    if settings.embedder == "openai":
        slots = len(settings.openai_base_url) * settings.openai_concurrency
        return EmbedderSpec(f"openai:{settings.openai_embed_model}", None, settings.openai_embed_model,
                            OPENAI_TEXTS_PER_CALL, min(MAX_BATCH, OPENAI_TEXTS_PER_CALL * max(1, slots)), max(1, slots))
    from bot.embed.local import LocalEmbedder

    return EmbedderSpec(LocalEmbedder.name, LocalEmbedder.dimension, "", 0, LOCAL_BATCH)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder that ``RAGCODE_EMBEDDER`` names."""
    if settings.embedder == "bedrock":
        from bot.embed.bedrock import BedrockEmbedder, CohereEmbedder

        if is_cohere(settings.bedrock_embed_model):
            return CohereEmbedder(settings)
        return BedrockEmbedder(settings)
    if settings.embedder == "openai":
        from bot.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    from bot.embed.local import LocalEmbedder

    return LocalEmbedder(settings.embed_processes or os.cpu_count() or 1)
