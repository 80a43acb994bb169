"""Text backends: one module per provider behind ``TextModel``."""

from __future__ import annotations

from bot.config import Settings
from bot.llm.base import TextModel


def make_text_model(settings: Settings) -> TextModel:
    """The text backend that ``RAGCODE_LLM`` names."""
    if settings.llm == "bedrock":
        from bot.llm.bedrock import BedrockTextModel

        return BedrockTextModel(settings)
    if settings.llm == "openai":
        from bot.llm.openai import OpenAITextModel

        return OpenAITextModel(settings)
    from bot.llm.offline import OfflineTextModel

    return OfflineTextModel()
