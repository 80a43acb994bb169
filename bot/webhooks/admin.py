"""``GET /status``: the operators' page, served only with ``RAGCODE_ADMIN_TOKEN`` and only to requests that send
it as a bearer token (compared in constant time). Never cached, no script, a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from bot.config import Settings
from bot.freshness import Freshness
from bot.github.client import GitHubApp
from bot.queue import Queue
from bot.runtime import Runtime
from bot.spend import Ledger, make_ledger
from bot.status import Process, Sources, collect
from bot.store.base import Store

log = logging.getLogger("ragcode.status")

PAGES_AT_ONCE = 2  # pages drawn at once; more requests get 503
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


def authorized(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>``; the comparison takes the same time whatever was sent."""
    scheme, _, given = (header or "").strip().partition(" ")
    same = hmac.compare_digest(hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest(),
                               hashlib.sha256(token.encode()).digest())
    return same and scheme.lower() == "bearer" and bool(token)


class StatusEndpoint:
    """The ``/status`` handler of one process; the store, ledger and GitHub client are opened on first use
    (a receiver that nobody asks for the page never opens them) and closed with ``close``."""

    def __init__(self, settings: Settings, queue: Queue, runtime: Runtime | None, app: GitHubApp | None,
                 role: str) -> None:
        self.settings = settings
        self.runtime = runtime
        self._own_runtime: Runtime | None = None
        self._own_ledger: Ledger | None = None
        self._lock = threading.Lock()
        self._drawing = asyncio.Semaphore(PAGES_AT_ONCE)
        app = app if app is not None else _app(settings)
        self.sources = Sources(settings, queue, self._ledger, self._store,
                               Freshness(settings.github_api_url, app.token if app else None, settings.home / "mirrors",
                                         settings.reconcile_min_rate), Process(role))

    async def endpoint(self, request: Request) -> Response:
        """The page, or 401 without the right bearer token, or 503 while other pages are being drawn."""
        if not authorized(request.headers.get("authorization"), self.settings.admin_token):
            return PlainTextResponse("GET /status needs the admin token: Authorization: Bearer <RAGCODE_ADMIN_TOKEN>\n",
                                     status_code=401, headers={**_HEADERS, "WWW-Authenticate": 'Bearer realm="ragcode"'})
        if self._drawing.locked():
            return PlainTextResponse("busy drawing other status pages; retry in a few seconds\n", status_code=503,
                                     headers={**_HEADERS, "Retry-After": "5"})
        async with self._drawing:
            html = await run_in_threadpool(self.draw)
        from bot.status_page import CONTENT_SECURITY_POLICY

        return HTMLResponse(html, headers={**_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY})

    def draw(self) -> str:
        """Gather and render the page."""
        from bot.status_page import render

        return render(collect(self.sources))

    def _store(self) -> Store:
        if self.runtime is not None:
            return self.runtime.store
        with self._lock:
            if self._own_runtime is None:
                self._own_runtime = Runtime(self.settings, read_only=True)
        return self._own_runtime.store

    def _ledger(self) -> Ledger:
        if self.runtime is not None:
            return self.runtime.spend
        with self._lock:
            if self._own_ledger is None:
                self._own_ledger = make_ledger(self.settings)
            return self._own_ledger

    def close(self) -> None:
        """Close what the page opened for itself."""
        with self._lock:
            if self._own_runtime is not None:
                self._own_runtime.close()
            if self._own_ledger is not None:
                self._own_ledger.close()


def _app(settings: Settings) -> GitHubApp | None:
    """The App's identity for reading branch heads, when this process has its credentials."""
    if not settings.github_app_id.strip():
        return None
    try:
        return GitHubApp(settings)
    except Exception:  # a receiver without (usable) App credentials: heads come from the mirrors or stay unknown
        log.info("no usable GitHub App credentials: the status page reads branch heads from the mirrors only")
        return None
