"""Self-healing: catch up every installed repository's indexed branches and redeliver failed webhook deliveries.

For every repository of every installation of the App, each indexed branch's head on GitHub is compared with
the indexed commit and a run is queued for a stale one (a drop for a deleted branch, a full index for a
repository never indexed); each pull request overlay is compared with its pull request (a refresh for a new head,
a drop once it is closed); the App's recent failed deliveries are redelivered once. So an outage of the
service, a lost delivery or a crashed run costs time, never an index that stays wrong. Every request reads
``X-RateLimit-Remaining``; below ``RAGCODE_RECONCILE_MIN_RATE`` for a credential, the pass stops using it
and the next pass goes on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from bot.documents import OVERLAY_PREFIX, BranchState, Repository, is_overlay
from bot.github.client import GitHubApp
from bot.queue import Queue
from bot.store.base import Store
from bot.webhooks.pulls import drop_overlay_job, overlay_job
from bot.webhooks.push import drop_job, index_job

log = logging.getLogger("ragcode.reconcile")

REDELIVERY_WINDOW = 3 * 86400  # GitHub redelivers deliveries of the last three days
MAX_PAGES = 50  # per listing: 5,000 installations, repositories of one installation, or deliveries
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class RateLimited(Exception):
    """A credential's remaining requests fell below the floor."""


@dataclass
class Report:
    """What one pass found and did (``ragcode reconcile --json``)."""

    installations: int = 0
    repositories: int = 0
    branches_checked: int = 0
    queued: list[dict[str, Any]] = field(default_factory=list)
    redelivered: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {"installations": self.installations, "repositories": self.repositories,
                "branches_checked": self.branches_checked, "queued": self.queued, "redelivered": self.redelivered,
                "stopped": self.stopped, "errors": self.errors, "seconds": round(self.seconds, 2)}


class GitHubApi:
    """Plain REST calls that keep each credential's ``X-RateLimit-Remaining`` and refuse to go below a floor."""

    def __init__(self, base_url: str, floor: int, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.floor = floor
        self.remaining: dict[str, int] = {}
        self.client = httpx.Client(timeout=timeout, headers={"Accept": "application/vnd.github+json",
                                                             "X-GitHub-Api-Version": "2022-11-28"})

    def request(self, method: str, path: str, credential: str, who: str, **params: Any) -> httpx.Response:
        """One request as ``who`` (a label for the rate limit: "app" or "installation N")."""
        left = self.remaining.get(who)
        if left is not None and left < self.floor:
            raise RateLimited(f"{who}: X-RateLimit-Remaining {left} is below RAGCODE_RECONCILE_MIN_RATE {self.floor}")
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        response = self.client.request(method, url, params=params or None,
                                       headers={"Authorization": f"Bearer {credential}"})
        header = response.headers.get("x-ratelimit-remaining", "")
        if header.isdigit():
            self.remaining[who] = int(header)
        if response.status_code in (403, 429) and self.remaining.get(who) == 0:
            raise RateLimited(f"{who}: rate limit exhausted")
        return response

    def pages(self, path: str, credential: str, who: str, key: str | None = None,
              **params: Any) -> Iterator[dict[str, Any]]:
        """Items of a listing, following ``Link: rel="next"`` (``key``: the list's field in an object answer)."""
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url, credential, who, **(params if url == path else {}))
            response.raise_for_status()
            data = response.json()
            yield from (data[key] if key else data)
            found = _NEXT.search(response.headers.get("link", ""))
            url = found[1] if found else None

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


def reconcile(app: GitHubApp, store: Store, queue: Queue, *, base_url: str, min_rate: int) -> Report:
    """One pass over every installation and the App's recent deliveries."""
    started = time.monotonic()
    report = Report()
    api = GitHubApi(base_url, min_rate)
    try:
        try:
            installations = list(api.pages("/app/installations", app.jwt(), "app", per_page=100))
        except RateLimited as error:
            report.stopped.append(str(error))
            installations = []
        for installation in installations:
            if installation.get("suspended_at"):
                continue
            report.installations += 1
            try:
                _installation(api, app, store, queue, int(installation["id"]), report)
            except RateLimited as error:
                report.stopped.append(str(error))
            except (httpx.HTTPError, ValueError) as error:
                report.errors.append(f"installation {installation['id']}: {type(error).__name__}: {error}")
        try:
            _redeliver(api, app, queue, report)
        except RateLimited as error:
            report.stopped.append(str(error))
        except (httpx.HTTPError, ValueError) as error:
            report.errors.append(f"deliveries: {type(error).__name__}: {error}")
    finally:
        api.close()
    report.seconds = time.monotonic() - started
    log.info("reconcile: %d repositories, %d runs queued, %d deliveries redelivered", report.repositories,
             len(report.queued), len(report.redelivered),
             extra={"stopped": report.stopped, "errors": report.errors[:5]})
    return report


def _installation(api: GitHubApi, app: GitHubApp, store: Store, queue: Queue, installation: int,
                  report: Report) -> None:
    token, who = app.token(installation), f"installation {installation}"
    for data in api.pages("/installation/repositories", token, who, key="repositories", per_page=100):
        repo = Repository(int(data["id"]), str(data["full_name"]), installation)
        report.repositories += 1
        details = {"clone_url": data["clone_url"], "html_url": data["html_url"],
                   "default_branch": data["default_branch"], "reason": "reconcile"}
        if isinstance(data.get("size"), int):
            details["size"] = data["size"]
        states = store.branch_states(repo.id)
        if not states:
            # Never indexed (a lost installation event, a parked first index): a full index, at most once a day.
            if not queue.full_index_pending(repo.id) and queue.remember(f"reconcile-full-{repo.id}", 86400):
                number = queue.add(index_job(repo, full=True, details=details), origin="reconcile")
                report.queued.append({"repo": repo.name, "repo_id": repo.id, "branch": data["default_branch"],
                                      "indexed": None, "head": None, "job": number, "reason": "not indexed"})
            continue
        for state in states:
            report.branches_checked += 1
            if is_overlay(state.branch):
                _overlay(api, queue, report, repo, state, details, token, who)
                continue
            response = api.request("GET", f"/repos/{repo.name}/branches/{quote(state.branch, safe='')}", token, who)
            if response.status_code == 404:
                if state.branch != data["default_branch"]:
                    _queue(queue, report, repo, state.branch, state.commit, None, details)
                continue
            response.raise_for_status()
            head = str(response.json()["commit"]["sha"])
            if head != state.commit or not state.complete:  # stale, or a run that stopped before it finished
                _queue(queue, report, repo, state.branch, state.commit, head, details)


def _queue(queue: Queue, report: Report, repo: Repository, branch: str, indexed: str, head: str | None,
           details: dict[str, Any]) -> None:
    """Queue a run to ``head`` (a drop when None); the same branch and head are queued once."""
    if head is None:
        spec, reason, delivery = drop_job(repo, branch, details), "deleted", f"reconcile-drop-{repo.id}-{indexed}"
    elif head == indexed:  # indexed at its head, but a run stopped before it was complete: once an hour
        spec, reason = index_job(repo, branch=branch, after=head, details=details), "unfinished"
        delivery = f"reconcile-finish-{repo.id}-{head}-{branch}-{int(time.time() // 3600)}"
    else:
        spec, reason = index_job(repo, branch=branch, after=head, details=details), "stale"
        delivery = f"reconcile-{repo.id}-{head}-{branch}"
    enqueued = queue.enqueue(delivery[:200], "reconcile", [spec])
    if enqueued.new:
        report.queued.append({"repo": repo.name, "repo_id": repo.id, "branch": branch, "indexed": indexed,
                              "head": head, "job": enqueued.jobs[0], "reason": reason})


def _overlay(api: GitHubApi, queue: Queue, report: Report, repo: Repository, state: BranchState,
             details: dict[str, Any], token: str, who: str) -> None:
    """Queue a refresh of a pull request overlay behind its head, or its drop once the pull request is closed."""
    number = int(state.branch.removeprefix(OVERLAY_PREFIX))
    response = api.request("GET", f"/repos/{repo.name}/pulls/{number}", token, who)
    if response.status_code != 404:
        response.raise_for_status()
    pull: dict[str, Any] = response.json() if response.status_code != 404 else {"state": "gone"}
    if pull["state"] == "open" and pull["head"]["sha"] == state.commit:
        return
    if pull["state"] == "open":
        head: str | None = str(pull["head"]["sha"])
        spec, reason = overlay_job(repo, number, {**details, "head": head}), "stale"
    else:
        head, spec, reason = None, drop_overlay_job(repo, number, details), str(pull["state"])
    enqueued = queue.enqueue(f"reconcile-{repo.id}-{state.branch}-{head or 'closed'}"[:200], "reconcile", [spec])
    if enqueued.new:
        report.queued.append({"repo": repo.name, "repo_id": repo.id, "branch": state.branch, "indexed": state.commit,
                              "head": head, "job": enqueued.jobs[0], "reason": reason})


def _redeliver(api: GitHubApi, app: GitHubApp, queue: Queue, report: Report) -> None:
    """Redeliver, once, each recent delivery whose every attempt failed for a reason on our side (no answer,
    5xx); deliveries we refused (4xx) would be refused again."""
    cutoff = time.time() - REDELIVERY_WINDOW
    attempts: dict[str, list[dict[str, Any]]] = {}
    for delivery in api.pages("/app/hook/deliveries", app.jwt(), "app", per_page=100):
        if _epoch(str(delivery["delivered_at"])) < cutoff:
            break
        attempts.setdefault(str(delivery["guid"]), []).append(delivery)
    for guid, tries in attempts.items():
        codes = [int(t.get("status_code") or 0) for t in tries]
        if any(200 <= code < 400 for code in codes) or not all(code == 0 or code >= 500 for code in codes):
            continue
        latest = max(tries, key=lambda t: str(t["delivered_at"]))
        if not queue.remember(f"redelivered-{guid}", REDELIVERY_WINDOW + 86400):
            continue
        response = api.request("POST", f"/app/hook/deliveries/{int(latest['id'])}/attempts", app.jwt(), "app")
        if response.status_code == 202:
            report.redelivered.append({"guid": guid, "id": latest["id"], "event": latest.get("event"),
                                       "status_code": latest.get("status_code")})
        else:
            report.errors.append(f"redelivery of {guid}: HTTP {response.status_code}")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()
