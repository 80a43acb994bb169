"""Embedding backends: one module per provider behind ``Embedder``."""

from __future__ import annotations

import os

from bot.config import Settings
from bot.embed.base import Embedder


def make_embedder(settings: Settings) -> Embedder:
    """The embedder that ``RAGCODE_EMBEDDER`` names."""
    if settings.embedder == "bedrock":
        from bot.embed.bedrock import BedrockEmbedder

        return BedrockEmbedder(settings)
    if settings.embedder == "openai":
        from bot.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    from bot.embed.local import LocalEmbedder

    return LocalEmbedder(settings.embed_processes or os.cpu_count() or 1)
