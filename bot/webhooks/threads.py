"""Threads on GitHub: where a command was given, its reaction and reply, the thread's earlier turns, the lines a
review comment is on (read from the pull request's head in the mirror) and how fresh the index is.

Everything is read from GitHub (and the mirror) when the command runs, never from a cache of this process, so any
worker answers a follow-up the same way. Readings are bounded: the last MAX_THREAD_COMMENTS comments of an
issue (two requests however long the thread), the newest MAX_REVIEW_PAGES pages of a pull request's review
comments.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import git
from github import GithubException
from github.Repository import Repository as GithubRepository
from requests import RequestException

from bot.commands.followup import MAX_BODY_CHARS, Comment, fit_turns, turns_of
from bot.commands.footer import Freshness
from bot.commands.suggest import asks_for_change, focus_of
from bot.github.mirror import MirrorError
from bot.indexer.languages import language_for
from bot.llm.base import Conversation, Focus
from bot.workers import Context

log = logging.getLogger("ragcode.threads")

MAX_THREAD_COMMENTS = 100  # of an issue or pull request conversation: the newest
PAGE = 100
MAX_REVIEW_PAGES = 3  # of a pull request's review comments, newest first
MAX_FOCUS_FILE_BYTES = 1 << 20  # a larger file's lines are not read for a review comment
KINDS = ("issue_comment", "issue", "review_comment")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Place:
    """Where a command was given: an issue or pull-request comment, an issue's body, or a review comment."""

    kind: str
    number: int  # the issue or pull request
    comment: int | None  # the command's comment (None for an issue's body)
    root: int | None = None  # the first comment of a review thread: replies go to it

    @property
    def thread(self) -> str:
        """The thread's key in reply markers: the issue (its conversation) or the review thread."""
        return f"review#{self.root}" if self.kind == "review_comment" else f"issue#{self.number}"

    @property
    def reply_kind(self) -> str:
        """What kind of comment the reply is: ``issue`` or ``review``."""
        return "review" if self.kind == "review_comment" else "issue"


def place_of(payload: dict[str, Any]) -> Place:
    """The place of a command job (jobs queued before review comments existed are issue comments)."""
    kind = str(payload.get("place") or "issue_comment")
    if kind not in KINDS:
        raise ValueError(f"unknown place {kind!r} in a command job")
    comment = payload.get("comment")
    root = payload.get("root")
    return Place(kind, int(payload["issue"]), int(comment) if comment is not None else None,
                 int(root) if root is not None else None)


def react(github_repo: GithubRepository, place: Place, content: str) -> None:
    """Put a reaction on the command. An issue's body gets none: the issue reactions endpoint is not among the
    operations ragcode uses (the OpenAPI subset it is checked against)."""
    if place.comment is None:
        return
    where = "pulls/comments" if place.kind == "review_comment" else "issues/comments"
    github_repo.requester.requestJsonAndCheck("POST", f"{github_repo.url}/{where}/{place.comment}/reactions",
                                              input={"content": content})


def post(github_repo: GithubRepository, place: Place, body: str) -> int:
    """Post the reply where the command was given; the new comment's id."""
    if place.kind == "review_comment":
        url = f"{github_repo.url}/pulls/{place.number}/comments/{place.root}/replies"
    else:
        url = f"{github_repo.url}/issues/{place.number}/comments"
    _, data = github_repo.requester.requestJsonAndCheck("POST", url, input={"body": body})
    return int(data["id"])


def read_thread(github_repo: GithubRepository, place: Place) -> list[Comment]:
    """The thread's comments, oldest first: the newest MAX_THREAD_COMMENTS of an issue, or the review thread's
    comments among the pull request's newest review comments."""
    if place.kind == "review_comment":
        return _review_thread(github_repo, place)
    _, issue = github_repo.requester.requestJsonAndCheck("GET", f"{github_repo.url}/issues/{place.number}")
    count = issue.get("comments") if isinstance(issue, dict) else None
    if not isinstance(count, int) or count < 1:
        return []
    last = max(1, math.ceil(count / PAGE))
    comments: list[Comment] = []
    for page in (last - 1, last) if last > 1 else (last,):
        _, data = github_repo.requester.requestJsonAndCheck(
            "GET", f"{github_repo.url}/issues/{place.number}/comments", parameters={"per_page": PAGE, "page": page})
        comments += [comment for comment in map(_comment, data if isinstance(data, list) else []) if comment]
    return comments[-MAX_THREAD_COMMENTS:]


def _review_thread(github_repo: GithubRepository, place: Place) -> list[Comment]:
    found: list[Comment] = []
    for page in range(1, MAX_REVIEW_PAGES + 1):
        _, data = github_repo.requester.requestJsonAndCheck(
            "GET", f"{github_repo.url}/pulls/{place.number}/comments",
            parameters={"sort": "created", "direction": "desc", "per_page": PAGE, "page": page})
        items = data if isinstance(data, list) else []
        for item in items:
            comment = _comment(item)
            if comment and (comment.id == place.root or item.get("in_reply_to_id") == place.root):
                found.append(comment)
        if len(items) < PAGE or any(comment.id == place.root for comment in found):
            break  # newest first: nothing older than the thread's first comment belongs to it
    return sorted(found, key=lambda comment: comment.id)


def _comment(item: Any) -> Comment | None:
    """A listed comment, or None when it lacks what a thread needs."""
    if not isinstance(item, dict) or not isinstance(item.get("user"), dict):
        return None
    number, body, user = item.get("id"), item.get("body"), item["user"]
    if not isinstance(number, int) or not isinstance(body, str):
        return None
    return Comment(number, body[:MAX_BODY_CHARS], str(user.get("login", "")), user.get("type") == "Bot")


def conversation(context: Context, github_repo: GithubRepository, place: Place, payload: dict[str, Any],
                 request: str, lang: str) -> Conversation:
    """The earlier turns of the command's thread within ``RAGCODE_THREAD_TOKENS``, and for a review comment the
    lines it is on."""
    turns: tuple[Any, ...] = ()
    dropped = 0
    if context.settings.thread_tokens > 0:
        try:
            comments = [comment for comment in read_thread(github_repo, place) if comment.id != place.comment]
            found = turns_of(comments, context.app.bot_login(), int(payload["repo_id"]), place.thread)
        except (GithubException, RequestException) as error:  # answered as a first request rather than not at all
            log.warning("could not read the thread; answering without it: %s", error,
                        extra={"repo_id": payload["repo_id"], "thread": place.thread})
            found = []
        turns, dropped = fit_turns(found, context.settings.thread_tokens, lang)
    focus = read_focus(context, payload, request) if place.kind == "review_comment" else None
    return Conversation(turns, dropped, focus)


def read_focus(context: Context, payload: dict[str, Any], request: str) -> Focus | None:
    """The lines a review comment is on, from the pull request's head fetched into the mirror (the base for a
    comment on removed lines, which cannot take a suggestion); None when they cannot be read: an outdated
    comment, a deleted file, lines beyond the file's end, a binary or oversized file."""
    review = payload.get("review") or {}
    line, start = review.get("line"), review.get("start_line") or review.get("line")
    if not isinstance(line, int) or not isinstance(start, int) or start > line:
        return None
    left = review.get("side") == "LEFT"
    repo_id, number = int(payload["repo_id"]), int(payload["issue"])
    try:
        mirror = context.mirrors.fetch_ref(repo_id, payload["clone_url"],
                                           context.app.token(int(payload["installation"])), f"refs/pull/{number}/head")
    except MirrorError as error:
        log.warning("could not fetch the pull request's head: %s", error, extra={"repo_id": repo_id})
        return None
    commits = [review.get("base_sha")] if left else [review.get("commit_id"), review.get("head_sha")]
    text = None
    for commit in commits:
        text = _file_at(mirror, commit, review.get("path"))
        if text is not None:
            break
    if text is None:
        return None
    path = str(review["path"])
    return focus_of(text, path, start, line, language_for(path) or "", change=not left and asks_for_change(request))


def _file_at(mirror: git.Repo, commit: Any, path: Any) -> str | None:
    """The text of ``path`` at ``commit``; None when either is missing or the file is binary or oversized."""
    if not isinstance(commit, str) or not isinstance(path, str) or not path:
        return None
    try:
        blob = mirror.commit(commit).tree / path
    except (KeyError, ValueError, git.BadName, git.GitCommandError):
        return None
    if blob.type != "blob" or blob.size > MAX_FOCUS_FILE_BYTES:
        return None
    data = blob.data_stream.read()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def freshness(context: Context, github_repo: GithubRepository, repo_id: int, branch: str, commit: str) -> Freshness:
    """How the indexed ``commit`` of ``branch`` compares with the branch's head on GitHub (commits between counted
    in the mirror when it has the head) and whether an index run is pending."""
    head: str | None = None
    behind: int | None = None
    try:
        _, data = github_repo.requester.requestJsonAndCheck(
            "GET", f"{github_repo.url}/branches/{quote(branch, safe='')}")
        sha = data.get("commit", {}).get("sha") if isinstance(data, dict) else None
        head = sha if isinstance(sha, str) and _SHA.fullmatch(sha) else None
    except (GithubException, RequestException) as error:
        log.info("could not read the head of %s: %s", branch, error, extra={"repo_id": repo_id})
    mirror = context.mirrors.open(repo_id) if head and head != commit else None
    if mirror is not None and head is not None:
        try:
            behind = int(mirror.git.rev_list("--count", f"{commit}..{head}"))
        except (git.GitCommandError, ValueError):
            behind = None  # the mirror has not fetched the head yet
    return Freshness(branch, commit, head, behind, context.queue.index_pending(repo_id))
