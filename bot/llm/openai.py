"""OpenAI-compatible text backend (Ollama, vLLM, llama.cpp server, …): ``/v1/chat/completions`` over httpx.

Each base URL in ``settings.openai_base_url`` is a "region" of the scheduler: calls go to the least-loaded one,
a 429 lowers its limit, a 5xx, timeout or connection error cools it down. Regions are named ``openai-1``,
``openai-2``, … by position, so internal URLs never reach metrics labels or check runs.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from bot.config import Settings
from bot.llm.prices import load_prices
from bot.llm.scheduler import (
    ChatTextModel,
    RegionScheduler,
    Reply,
    RequestError,
    ThrottledError,
    UnavailableError,
)

log = logging.getLogger(__name__)

_THINKING = re.compile(r"<think>.*?</think>", re.S)  # reasoning models served by Ollama/vLLM put this in content


def endpoint(base: str, path: str) -> str:
    """``base`` + ``/v1/`` + ``path``; a base that already ends in ``/v1`` (the OpenAI SDK habit) works too."""
    base = base.rstrip("/")
    return f"{base}/{path}" if base.endswith("/v1") else f"{base}/v1/{path}"


class OpenAICompatibleClient:
    """POSTs JSON to OpenAI-compatible servers, raising the scheduler's error types; calls count under ``model``."""

    def __init__(self, settings: Settings, model: str) -> None:
        if not settings.openai_base_url:
            raise ValueError("no OpenAI-compatible base URL configured")
        headers = {"Authorization": f"Bearer {settings.openai_api_key}"} if settings.openai_api_key else {}
        slots = settings.openai_concurrency * len(settings.openai_base_url)
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.openai_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=slots + 2, max_keepalive_connections=slots + 2),
        )
        self.bases = {label(number): base for number, base in enumerate(settings.openai_base_url, 1)}
        self.scheduler = RegionScheduler(
            list(self.bases),
            settings.openai_concurrency,
            settings.bedrock_max_attempts,
            cooldown=settings.bedrock_cooldown,
            model=model,
            price=load_prices(settings.prices_file).price(model),
        )

    def post(self, region: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON reply of ``POST <base URL of region>/v1/path``."""
        try:
            response = self._http.post(endpoint(self.bases[region], path), json=body)
        except httpx.TransportError as error:  # timeouts, refused and reset connections
            raise UnavailableError(f"{type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            text = f"HTTP {response.status_code}: {_error_message(response)}"
            if response.status_code == 429:
                raise ThrottledError(text)
            if response.status_code >= 500 or response.status_code == 408:
                raise UnavailableError(text)
            raise RequestError(text)
        try:
            payload = response.json()
        except ValueError:
            raise RequestError(f"not JSON: {response.text[:200]!r}") from None
        if not isinstance(payload, dict):
            raise RequestError(f"unexpected reply: {response.text[:200]!r}")
        return payload

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def label(number: int) -> str:
    """The region name of the ``number``-th base URL (1-based)."""
    return f"openai-{number}"


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error or response.text[:200])


class OpenAITextModel(ChatTextModel):
    """Summaries and answers from ``settings.openai_model`` on one or more OpenAI-compatible servers."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self._client = OpenAICompatibleClient(settings, self.model)
        super().__init__(f"openai:{self.model}", self._client.scheduler)

    def _chat(self, region: str, system: str, user: str, max_tokens: int) -> Reply:
        payload = self._client.post(region, "chat/completions", {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "stream": False,
        })
        try:
            text = payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RequestError(f"unexpected chat completion: {str(payload)[:200]}") from None
        usage = payload.get("usage") or {}
        return Reply(_THINKING.sub("", text), usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
