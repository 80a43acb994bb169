"""Text backends: one module per provider behind ``TextModel``."""

from __future__ import annotations

from bot.config import Settings
from bot.llm.base import TextModel


def text_model_name(settings: Settings) -> str:
    """``TextModel.name`` of the configured backend, known without building it (part of summary cache keys)."""
    if settings.llm == "bedrock":
        return f"bedrock:{settings.bedrock_model}"
    if settings.llm == "openai":
        return f"openai:{settings.openai_model}"
    return "offline"


def billed_text_model(settings: Settings) -> str:
    """The model the configured backend's calls are counted and priced under ("" when it makes no calls)."""
    return {"bedrock": settings.bedrock_model, "openai": settings.openai_model}.get(settings.llm, "")


def text_model_slots(settings: Settings) -> tuple[int, int]:
    """Regions (or base URLs) and calls in flight per region of the configured backend ((0, 0): no calls)."""
    if settings.llm == "bedrock":
        return len(settings.bedrock_regions), settings.bedrock_concurrency
    if settings.llm == "openai":
        return len(settings.openai_base_url), settings.openai_concurrency
    return 0, 0


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
