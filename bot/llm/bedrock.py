"""Amazon Bedrock text backend: the Converse API in several regions at once, one boto3 client per region."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot.config import ConfigError, Settings
from bot.llm.prices import load_prices
from bot.llm.scheduler import (
    CallError,
    ChatTextModel,
    RegionScheduler,
    Reply,
    RequestError,
    ThrottledError,
    UnavailableError,
)

log = logging.getLogger(__name__)

_THROTTLE_CODES = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
_UNAVAILABLE_CODES = {
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelTimeoutException",
    "ModelNotReadyException",  # a 429, but it means "not serving yet" rather than "too many of your calls"
}


def bedrock_clients(settings: Settings) -> dict[str, BaseClient]:
    """One ``bedrock-runtime`` client per configured region, with botocore's own retries off.

    The scheduler retries across regions; botocore retrying too would multiply the attempts and hide
    throttles from the AIMD limit. ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` is honoured by boto3 itself.
    """
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise ConfigError("AWS credentials: none found (environment, shared files, SSO or instance role)")
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=settings.bedrock_timeout,
        max_pool_connections=settings.bedrock_concurrency + 2,
        user_agent_extra="ragcode",
    )
    return {region: session.client("bedrock-runtime", region_name=region, config=config)
            for region in settings.bedrock_regions}


def bedrock_scheduler(settings: Settings, model: str) -> RegionScheduler:
    """A scheduler over ``settings.bedrock_regions`` with the configured limits, counting calls under ``model``."""
    return RegionScheduler(
        settings.bedrock_regions,
        settings.bedrock_concurrency,
        settings.bedrock_max_attempts,
        cooldown=settings.bedrock_cooldown,
        model=model,
        price=load_prices(settings.prices_file).price(model),
    )


def translate_error(error: Exception) -> CallError:
    """The scheduler's view of a boto3 error: throttle, unavailable region, or a rejected request."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{code or status}: {details.get('Message') or error}"
        if code in _UNAVAILABLE_CODES or status >= 500 or status == 408:
            return UnavailableError(text)
        if code in _THROTTLE_CODES or status == 429:
            return ThrottledError(text)
        return RequestError(text)
    if isinstance(error, HTTPClientError | BotoConnectionError):
        return UnavailableError(f"{type(error).__name__}: {error}")
    return RequestError(f"{type(error).__name__}: {error}")


def call_bedrock(operation: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one boto3 operation, raising the scheduler's error types."""
    try:
        return operation(**kwargs)
    except (ClientError, BotoCoreError) as error:
        raise translate_error(error) from error


class BedrockTextModel(ChatTextModel):
    """Summaries and answers through Converse with ``settings.bedrock_model`` (a model id or inference profile)."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.bedrock_model
        self._clients = bedrock_clients(settings)
        super().__init__(f"bedrock:{self.model}", bedrock_scheduler(settings, self.model))

    def _chat(self, region: str, system: str, user: str, max_tokens: int) -> Reply:
        response = call_bedrock(
            self._clients[region].converse,
            modelId=self.model,
            system=[{"text": system}],
            messages=[{"role": "user", "content": [{"text": user}]}],
            inferenceConfig={"maxTokens": max_tokens, "temperature": 0.0},
        )
        try:
            blocks = response["output"]["message"]["content"]
        except (KeyError, TypeError):
            raise RequestError(f"unexpected Converse response: {sorted(response)}") from None
        text = "".join(block.get("text", "") for block in blocks)
        if response.get("stopReason") == "max_tokens":
            log.info("%s: answer cut at %d tokens", region, max_tokens)
        usage = response.get("usage", {})
        return Reply(text, usage.get("inputTokens", 0), usage.get("outputTokens", 0))
