"""Pushes: index the pushed branch incrementally (with a check run), drop deleted branches."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from github.CheckRun import CheckRun
from github.Repository import Repository

from bot import logs
from bot.github.mirror import branch_head
from bot.indexer.pipeline import index_branch
from bot.queue import Job, JobSpec
from bot.repo_config import load_config
from bot.webhooks import checks
from bot.webhooks.router import Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.push")
router = Router()
PROGRESS_EVERY = 5.0  # seconds between check run updates while indexing


def index_job(installation: int, repo: str, *, branch: str | None = None, full: bool = False,
              after: str | None = None, details: dict[str, str] | None = None) -> JobSpec:
    """A run that indexes ``branch`` (None: the default branch) of ``repo``; runs of one repository serialize."""
    payload = {"installation": installation, "repo": repo, "branch": branch, "full": full, **(details or {})}
    if after is not None:
        payload["after"] = after
    return JobSpec("index", repo, payload, serial=f"repo:{repo}", scope=f"{repo}:{branch or ''}",
                   coalesce=f"index:{repo}:{branch or ''}")


def repository_details(data: dict[str, Any]) -> dict[str, str]:
    """Clone URL, web URL and default branch from a payload's ``repository``."""
    return {
        "clone_url": field(data, "repository", "clone_url"),
        "html_url": field(data, "repository", "html_url"),
        "default_branch": field(data, "repository", "default_branch"),
    }


@router.register("push")
def on_push(event: Event) -> list[JobSpec]:
    """Queue an index run for a branch push or a drop for a branch deletion; tags are ignored."""
    ref = field(event.data, "ref")
    if not ref.startswith("refs/heads/"):
        return []
    repo = field(event.data, "repository", "full_name")
    installation = field(event.data, "installation", "id", kind=int)
    branch = ref.removeprefix("refs/heads/")
    details = repository_details(event.data)
    if event.data.get("deleted") is True:
        payload = {"installation": installation, "repo": repo, "branch": branch, **details}
        return [JobSpec("drop_branch", repo, payload, serial=f"repo:{repo}", scope=f"{repo}:{branch}")]
    after = field(event.data, "after")
    return [index_job(installation, repo, branch=branch, after=after, details=details)]


def resolve_repository(context: Context, payload: dict[str, Any]) -> dict[str, str]:
    """Clone URL, web URL and default branch: from the payload, else from ``GET /repos/{owner}/{repo}``."""
    if all(payload.get(key) for key in ("clone_url", "html_url", "default_branch")):
        return {key: payload[key] for key in ("clone_url", "html_url", "default_branch")}
    remote = context.app.client(payload["installation"]).get_repo(payload["repo"])
    return {"clone_url": remote.clone_url, "html_url": remote.html_url, "default_branch": remote.default_branch}


def run_index(context: Context, job: Job) -> None:
    """Fetch the mirror and index the branch head as fetched, reporting in a check run on that commit."""
    payload = job.payload
    repo, installation = payload["repo"], payload["installation"]
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo}
    details = resolve_repository(context, payload)
    mirror = context.mirrors.sync(repo, details["clone_url"], context.app.token(installation))
    default_branch = details["default_branch"]
    branch = payload.get("branch") or default_branch
    config = load_config(mirror, f"refs/heads/{default_branch}", context.settings)
    if not payload.get("full") and not config.indexes(branch, default_branch):
        log.info("branch %s is not configured for indexing", branch, extra=extra)
        return
    head = branch_head(mirror, branch)
    if head is None:
        log.info("branch %s no longer exists", branch, extra=extra)
        return
    github_repo = context.app.client(installation).get_repo(repo)
    check = _check_run(context, job, github_repo, head)
    try:
        report = index_branch(
            context.runtime, mirror, repo, branch, head, full=bool(payload.get("full")), options=config.options,
            progress=_Progress(check),
        )
    except Exception:
        reference = logs.reference()
        log.exception("indexing failed", extra=extra | {"reference": reference})
        text, body = checks.failure(reference, config.errors)
        _complete(check, "failure", text, body)
        raise
    conclusion = "failure" if report.functions_failed else "success"
    _complete(check, conclusion, checks.title(report, config.errors), checks.summary(report, config.errors))
    log.info("indexed %s@%s: %s", branch, head[:12], checks.title(report), extra=extra)


def run_drop(context: Context, job: Job) -> None:
    """Drop a deleted branch's index, never the default branch's."""
    payload = job.payload
    extra = {"delivery": job.delivery, "job": job.id, "repo": payload["repo"]}
    if payload["branch"] == payload.get("default_branch"):
        log.warning("refusing to drop the default branch %s", payload["branch"], extra=extra)
        return
    context.runtime.store.drop_branch(payload["repo"], payload["branch"])
    log.info("dropped the index of branch %s", payload["branch"], extra=extra)


def _check_run(context: Context, job: Job, github_repo: Repository, head: str) -> CheckRun:
    """The job's check run on ``head``: reused on a retry, else created ``in_progress``."""
    known = job.payload.get("check_run")
    if known and known.get("head") == head:
        check = github_repo.get_check_run(known["id"])
        check.edit(status="in_progress", output={"title": "Indexing (retry)", "summary": "Indexing again."})
        return check
    check = github_repo.create_check_run(
        name=checks.NAME, head_sha=head, status="in_progress", started_at=datetime.now(UTC),
        output={"title": "Indexing", "summary": "Indexing started."},
    )
    context.queue.update_payload(job.id, {"check_run": {"id": check.id, "head": head}})
    return check


def _complete(check: CheckRun, conclusion: str, text: str, body: str) -> None:
    check.edit(status="completed", conclusion=conclusion, completed_at=datetime.now(UTC),
               output={"title": text[:250], "summary": body})


class _Progress:
    """``progress(stage, done, total)`` for the pipeline: updates the check run at most every few seconds."""

    def __init__(self, check: CheckRun) -> None:
        self.check = check
        self.last = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        text, body = checks.progress(stage, done, total)
        try:
            self.check.edit(status="in_progress", output={"title": text, "summary": body})
        except Exception:  # progress is cosmetic; the run goes on
            log.warning("check run progress update failed", exc_info=True)
