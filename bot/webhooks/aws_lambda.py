"""The webhook receiver as an AWS Lambda function behind a function URL or API Gateway (HTTP API or REST API):
the same ASGI application as ``ragcode serve --no-workers``, adapted by Mangum.

Handler: ``bot.webhooks.aws_lambda.handler``. Settings come from the function's environment (with
``RAGCODE_QUEUE=sqs``); it verifies, deduplicates and enqueues, and never opens the store or loads a model.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mangum import Mangum

from bot import logs
from bot.config import ConfigError, Settings, load_settings
from bot.webhooks.app import create_app

_handler: Mangum | None = None
_lock = threading.Lock()


def make_handler(settings: Settings) -> Mangum:
    """A Lambda handler for the receiver with ``settings``."""
    if not settings.github_webhook_secret:
        raise ConfigError("GITHUB_WEBHOOK_SECRET: required by the receiver")
    return Mangum(create_app(settings, work=False), lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The function's entry point; the application is built once per execution environment."""
    global _handler
    with _lock:
        if _handler is None:
            logs.configure(logging.INFO)
            _handler = make_handler(load_settings())
    answer: dict[str, Any] = _handler(event, context)
    return answer
