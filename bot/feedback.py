"""Feedback on replies: every reply is remembered in the queue's shared storage, and a periodic pass of the
workers reads the reactions of recent replies, counting each reaction once into
``ragcode_reply_feedback_total{reaction}`` and the ledger's totals (``ragcode status``).

Issue-comment replies: ``GET /repos/{o}/{r}/issues/comments/{id}/reactions`` lists each reaction with its id and
author, so each is counted once by its id and bots' reactions are left out. Review-comment replies: the reactions
listing of review comments is not among the operations ragcode uses (the OpenAPI subset it is checked against),
so their counts come from the ``reactions`` summary of ``GET /repos/{o}/{r}/pulls/{n}/comments``; the n-th 👍 of
a reply is counted once (a reaction taken back and given again is not counted twice, and bots' reactions cannot
be told apart there). Each pass counts newest first and stops at the first reaction a pass already counted, so
a pass costs what is new, not every reaction ever given.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import httpx

from bot import metrics
from bot.documents import Repository
from bot.queue import Queue
from bot.reconcile import GitHubApi, RateLimited
from bot.workers import Context

log = logging.getLogger("ragcode.feedback")

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")  # GitHub's reaction contents
MAX_REPLIES_PER_PASS = 100  # the newest replies read per pass
MAX_REACTIONS_PER_REPLY = 100  # one page of reactions per reply
MAX_REVIEW_PAGES = 3  # of a pull request's review comments, newest first
DAY = 86400.0


def remember_reply(queue: Queue, repo: Repository, kind: str, comment_id: int, number: int, days: float) -> None:
    """Remember a reply (``kind``: ``issue`` or ``review`` comment) so feedback passes read its reactions for
    ``days`` days."""
    queue.record_reply({"kind": kind, "id": comment_id, "repo": repo.name, "repo_id": repo.id,
                        "installation": repo.installation, "number": number, "at": time.time()}, days * DAY)


def collect_feedback(context: Context) -> dict[str, int]:
    """One pass: count the reactions given to recent replies since the last pass; the new counts by reaction."""
    settings = context.settings
    ttl = settings.feedback_days * DAY + DAY  # a reaction's mark outlives the window in which it can be read
    counted: Counter[tuple[int, str]] = Counter()
    api = GitHubApi(settings.github_api_url, settings.reconcile_min_rate)
    try:
        by_installation: dict[int, list[dict[str, Any]]] = {}
        for reply in context.queue.recent_replies(MAX_REPLIES_PER_PASS):
            by_installation.setdefault(int(reply["installation"]), []).append(reply)
        for installation, replies in by_installation.items():
            try:
                token = context.app.token(installation)
                _count_installation(api, context.queue, token, f"installation {installation}", replies, ttl, counted)
            except (RateLimited, httpx.HTTPError) as error:
                log.warning("feedback pass stopped for installation %s: %s", installation, error)
            except Exception:  # a revoked installation or a GitHub error: the next pass tries again
                log.warning("feedback pass failed for installation %s", installation, exc_info=True)
    finally:
        api.close()
    totals: Counter[str] = Counter()
    for (repo_id, reaction), count in counted.items():
        metrics.REPLY_FEEDBACK.labels(reaction=reaction).inc(count)
        context.runtime.spend.record_feedback(repo_id, reaction, count)
        totals[reaction] += count
    if totals:
        log.info("reply feedback counted", extra={"reactions": dict(totals)})
    return dict(totals)


def _count_installation(api: GitHubApi, queue: Queue, token: str, who: str, replies: list[dict[str, Any]],
                        ttl: float, counted: Counter[tuple[int, str]]) -> None:
    reviews: dict[tuple[str, int, int], set[int]] = {}
    for reply in replies:
        repo, repo_id, number = str(reply["repo"]), int(reply["repo_id"]), int(reply["id"])
        if reply["kind"] == "review":
            reviews.setdefault((repo, repo_id, int(reply["number"])), set()).add(number)
            continue
        response = api.request("GET", f"/repos/{repo}/issues/comments/{number}/reactions", token, who,
                               per_page=MAX_REACTIONS_PER_REPLY)
        if response.status_code != 200:  # deleted, or the repository renamed or gone
            continue
        given = [(int(item["id"]), str(item["content"])) for item in response.json() if _by_a_person(item)]
        for reaction_id, content in sorted(given, reverse=True):  # newest first: stop at the first one counted
            if not queue.remember(f"reaction-{reaction_id}", ttl):
                break
            counted[(repo_id, content)] += 1
    for (repo, repo_id, pull), ids in reviews.items():
        for page in range(1, MAX_REVIEW_PAGES + 1):
            response = api.request("GET", f"/repos/{repo}/pulls/{pull}/comments", token, who, sort="created",
                                   direction="desc", per_page=100, page=page)
            items = response.json() if response.status_code == 200 else []
            for item in items:
                if isinstance(item, dict) and item.get("id") in ids:
                    _count_summary(queue, int(item["id"]), item.get("reactions"), repo_id, ttl, counted)
            if len(items) < 100 or min((item.get("id", 0) for item in items if isinstance(item, dict)),
                                       default=0) < min(ids):
                break


def _count_summary(queue: Queue, comment_id: int, summary: Any, repo_id: int, ttl: float,
                   counted: Counter[tuple[int, str]]) -> None:
    """Count the reactions of a review comment's ``reactions`` summary that no pass counted yet."""
    if not isinstance(summary, dict):
        return
    for content in REACTIONS:
        given = summary.get(content)
        if not isinstance(given, int) or isinstance(given, bool):
            continue
        for nth in range(min(given, MAX_REACTIONS_PER_REPLY), 0, -1):  # from the newest: stop at one counted
            if not queue.remember(f"reaction-review-{comment_id}-{content}-{nth}", ttl):
                break
            counted[(repo_id, content)] += 1


def _by_a_person(item: Any) -> bool:
    """A listed reaction of a known kind, given by a user rather than a bot."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int) or item.get("content") not in REACTIONS:
        return False
    user = item.get("user")
    return isinstance(user, dict) and user.get("type") != "Bot"
