"""The webhook service: Starlette app (``/webhook``, ``/healthz``, ``/metrics``, ``/status``), its workers, or
either alone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import logs, metrics
from bot.config import ConfigError, Settings
from bot.github.client import GitHubApp, check_app_settings
from bot.github.mirror import Mirrors
from bot.queue import make_queue
from bot.runtime import Runtime
from bot.webhooks import comments, installation, pulls, push
from bot.webhooks.admin import StatusEndpoint
from bot.webhooks.router import BadPayload, Event, Router
from bot.webhooks.signature import Verifier
from bot.workers import Context, Workers, update_gauges

log = logging.getLogger("ragcode.webhooks")
router = Router(installation.router, push.router, comments.router, pulls.router)
RUNNERS = {"index": push.run_index, "drop_branch": push.run_drop, "command": comments.run_command,
           "auto_answer": comments.run_auto_answer, "forget": installation.run_forget,
           "rename": installation.run_rename, "overlay": pulls.run_overlay, "drop_overlay": pulls.run_drop_overlay}


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, *, receive: bool = True, work: bool = True, status: bool = True) -> Starlette:
    """The service for ``settings``: ``receive`` serves ``/webhook``; ``work`` runs workers (they start with
    the app); ``status`` serves ``/status`` when ``RAGCODE_ADMIN_TOKEN`` is set. A receiver alone never opens
    the store or loads a model (the status page opens the store read-only when it is asked for): acknowledgements
    stay fast and a Lambda cold start small."""
    queue = make_queue(settings)
    runtime = Runtime(settings) if work else None
    workers: Workers | None = None
    if runtime is not None:
        context = Context(settings, runtime, queue, GitHubApp(settings),
                          Mirrors(settings.home / "mirrors", allow_file_urls=settings.allow_file_urls,
                                  timeout=settings.fetch_timeout, max_bytes=settings.max_repo_mb << 20))
        workers = Workers(context, RUNNERS, settings.workers,
                          periodic={"reconcile": (settings.reconcile_interval, reconcile_periodic),
                                    "feedback": (settings.feedback_interval, feedback_periodic)})
    status_page: StatusEndpoint | None = None
    if status and settings.admin_token:
        role = "ragcode serve" if receive and work else "ragcode serve --no-workers" if receive else "ragcode worker"
        status_page = StatusEndpoint(settings, queue, runtime, workers.context.app if workers else None, role)
    reading = asyncio.Semaphore(settings.webhook_max_reads)

    async def webhook(request: Request) -> Response:
        verifier = Verifier(settings.github_webhook_secret, request.headers.get("x-hub-signature-256"))
        if not verifier.possible:  # no signature: nothing is read
            return _outcome("", "unauthorized", 401, {"error": "bad or missing signature"})
        if reading.locked():
            return _outcome("", "busy", 503, {"error": "too many deliveries are being received; retry later"})
        async with reading:
            try:
                body = await asyncio.wait_for(_read_body(request, settings.webhook_max_bytes, verifier),
                                              settings.webhook_read_timeout)
            except _TooLarge:
                return _outcome("", "too_large", 413, {"error": "body too large"})
            except TimeoutError:
                return _outcome("", "timeout", 408, {"error": "the body was not received in time"})
        if not verifier.valid():
            return _outcome("", "unauthorized", 401, {"error": "bad or missing signature"})
        event_name = request.headers.get("x-github-event", "").strip()
        delivery = request.headers.get("x-github-delivery", "").strip()
        extra = {"delivery": delivery, "event": event_name}
        if not event_name or not delivery or len(delivery) > 200:
            return _outcome(event_name, "bad_request", 400, {"error": "missing X-GitHub-Event or X-GitHub-Delivery"})
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep, a number too long
            return _outcome(event_name, "bad_request", 400, {"error": "body is not JSON", "delivery": delivery})
        if not isinstance(data, dict):
            return _outcome(event_name, "bad_request", 400, {"error": "body is not a JSON object", "delivery": delivery})
        event = Event(event_name, delivery, data)
        if event_name == "ping":
            log.info("ping", extra=extra)
            return _outcome(event_name, "ping", 200, {"delivery": delivery, "zen": str(data.get("zen", ""))})
        try:
            specs = router.dispatch(event)
        except BadPayload as error:
            log.info("bad payload: %s", error, extra=extra)
            return _outcome(event_name, "bad_request", 400, {"error": str(error), "delivery": delivery})
        except (LookupError, TypeError, ValueError, AttributeError, RecursionError):
            # a handler tripped over a shape it did not expect: still the body's fault, logged for a fix
            log.warning("payload not routable", exc_info=True, extra=extra)
            return _outcome(event_name, "bad_request", 400, {"error": "payload has an unexpected shape",
                                                             "delivery": delivery})
        if not specs:
            log.info("ignored %s%s", event_name, f".{event.action}" if event.action else "", extra=extra)
            return _outcome(event_name, "ignored", 200, {"delivery": delivery, "ignored": True})
        # The delivery id header is not signed: a captured body replayed under fresh ids is caught by its hash.
        body_hash = hashlib.sha256(body).hexdigest()
        try:
            enqueued = await run_in_threadpool(queue.enqueue, delivery, event_name, specs, body_hash)
        except Exception:  # GitHub marks the delivery failed; it is redelivered (by reconcile) and nothing is lost
            log.exception("could not queue the delivery", extra=extra)
            return _outcome(event_name, "unavailable", 503, {"error": "queue unavailable", "delivery": delivery})
        if not enqueued.new:
            log.info("duplicate delivery", extra=extra)
            return _outcome(event_name, "duplicate", 200, {"delivery": delivery, "job": enqueued.jobs[0],
                                                             "duplicate": True})
        if workers is not None:
            workers.notify()
        log.info("queued jobs %s", enqueued.jobs, extra=extra)
        return _outcome(event_name, "queued", 202, {"delivery": delivery, "job": enqueued.jobs[0],
                                                    "jobs": enqueued.jobs})

    async def healthz(request: Request) -> Response:
        queue_ok = await run_in_threadpool(queue.ping)
        body: dict[str, Any] = {"queue": queue_ok}
        healthy = queue_ok
        if runtime is not None:  # only workers use the store
            body["store"] = await run_in_threadpool(_store_ok, runtime)
            healthy = healthy and body["store"]
        if workers is not None:
            body["running"] = len(workers.running())
        if queue_ok:
            body["jobs"] = await run_in_threadpool(queue.counts)
        body = {"status": "ok" if healthy else "unavailable", **body}
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        await run_in_threadpool(update_gauges, queue)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(queue.prune)
        if workers is not None and runtime is not None and not settings.pause_workers:
            recovered = await run_in_threadpool(queue.recover)
            if recovered:
                log.info("resuming %d jobs interrupted by a restart", recovered)
            await run_in_threadpool(_warm_up, runtime)
            workers.start()
        elif workers is not None:
            log.info("workers paused (RAGCODE_PAUSE_WORKERS=1); deliveries are only queued")
        try:
            yield
        finally:
            if workers is not None:
                await run_in_threadpool(workers.stop, settings.worker_grace_seconds)
            if status_page is not None:
                status_page.close()
            if runtime is not None:
                runtime.close()

    routes = [
        *([Route("/webhook", webhook, methods=["POST"])] if receive else []),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *([Route("/status", status_page.endpoint, methods=["GET"])] if status_page is not None else []),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.queue = queue
    app.state.workers = workers
    return app


async def _read_body(request: Request, limit: int, verifier: Verifier) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all; the signature is computed as
    it streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        verifier.update(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome(event: str, outcome: str, status: int, body: dict[str, Any]) -> Response:
    # Event names only count once the signature is good: unsigned callers cannot grow the label set.
    metrics.DELIVERIES.labels(event=event if status not in (401, 413) else "", outcome=outcome).inc()
    return JSONResponse(body, status_code=status)


def _warm_up(runtime: Runtime) -> None:
    """Load the models before listening: their first use holds the GIL for seconds and would stall acks."""
    started = time.monotonic()
    runtime.warm_up()
    log.info("models loaded in %.1f s", time.monotonic() - started)


def _store_ok(runtime: Runtime) -> bool:
    try:
        return bool(runtime.store.ping())
    except Exception:  # any store failure means "not healthy", never a 500
        return False


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, *, work: bool = True) -> None:
    """``ragcode serve``: check the settings it needs (ConfigError names the variable), then run until stopped."""
    if work:
        check_app_settings(settings)
    elif not settings.github_webhook_secret:
        raise ConfigError("GITHUB_WEBHOOK_SECRET: required by serve")
    logs.configure(logging.INFO)
    app = create_app(settings, work=work)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10,
                limit_concurrency=settings.max_connections, timeout_keep_alive=5)


def work(settings: Settings, host: str = "127.0.0.1", port: int = 8001) -> None:
    """``ragcode worker``: workers with ``/healthz`` and ``/metrics``; SIGTERM stops claiming, lets the running
    jobs finish for ``RAGCODE_WORKER_GRACE_SECONDS`` and releases the rest."""
    check_app_settings(settings, webhook_secret=False)
    logs.configure(logging.INFO)
    app = create_app(settings, receive=False, work=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler it found: this one, so a
    # worker that finished or released its job exits 0 rather than "killed by SIGTERM".
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=5)


def _stopped(number: int, frame: object) -> None:
    log.info("stopped by signal %d", number)


def reconcile_periodic(context: Context) -> None:
    """The workers' periodic reconcile pass."""
    from bot.reconcile import reconcile

    reconcile(context.app, context.runtime.store, context.queue, base_url=context.settings.github_api_url,
              min_rate=context.settings.reconcile_min_rate)


def feedback_periodic(context: Context) -> None:
    """The workers' periodic pass over reactions to recent replies."""
    from bot.feedback import collect_feedback

    collect_feedback(context)
