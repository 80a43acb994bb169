"""Pull requests: their changed files indexed as an overlay on the base branch's index, kept at the head.

``opened``, ``synchronize``, ``reopened`` (and ``edited`` with a new base) queue a refresh of the overlay, one job
per pull request (coalesced while queued, serialized with the repository's other runs); ``closed``, merged or
not, drops it. Every run asks GitHub for the pull request as it is now (``GET /repos/{o}/{r}/pulls/{n}``), so late
or repeated deliveries converge. A pull request from a fork is indexed only when the repository's
``.github/ragcode.yml`` on its default branch says ``pull_requests_from_forks: true``; its head is fetched from the
base repository's ``refs/pull/N/head`` with the installation's read-only token, never from the fork.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from github import GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository as GithubRepository

from bot.config import LimitExceeded
from bot.documents import Overlay, Repository, overlay_branch
from bot.indexer.overlay import OverlayError, index_overlay, ready_overlay
from bot.llm.usage import metering
from bot.queue import Job, JobSpec
from bot.repo_config import RepoConfig, load_config
from bot.spend import RunSummary, monthly_budget, record_meter
from bot.webhooks.push import job_repository, repository_details, repository_of, resolve_repository
from bot.webhooks.router import Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.pulls")
router = Router()
REFRESH = frozenset({"opened", "synchronize", "reopened"})

NOTES = {
    "ko": {
        "pending": "이 풀 리퀘스트의 변경 사항은 아직 색인하는 중이라 기본 브랜치 `{base}` 기준으로 답합니다. "
                   "잠시 후 다시 요청하면 풀 리퀘스트의 코드로 답합니다.",
        "fork": "이 풀 리퀘스트는 포크에서 왔고, 저장소 설정(`.github/ragcode.yml`의 `pull_requests_from_forks`)이 "
                "포크의 코드를 색인하지 않으므로 기본 브랜치 `{base}` 기준으로 답합니다.",
    },
    "en": {
        "pending": "This pull request's changes are still being indexed, so this answer is from the base branch "
                   "`{base}`. Ask again shortly for an answer from the pull request's code.",
        "fork": "This pull request comes from a fork, and this repository's configuration "
                "(`pull_requests_from_forks` in `.github/ragcode.yml`) does not index forks' code, so this answer "
                "is from the base branch `{base}`.",
    },
}


def overlay_job(repo: Repository, number: int, details: dict[str, Any]) -> JobSpec:
    """A refresh of pull request ``number``'s overlay; queued refreshes of one pull request merge."""
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "number": number, **details}
    scope = f"{repo.id}:{overlay_branch(number)}"
    return JobSpec("overlay", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}", scope=scope,
                   coalesce=f"overlay:{repo.id}:{number}")


def drop_overlay_job(repo: Repository, number: int, details: dict[str, Any]) -> JobSpec:
    """A job that drops pull request ``number``'s overlay."""
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "number": number, **details}
    return JobSpec("drop_overlay", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}",
                   scope=f"{repo.id}:{overlay_branch(number)}")


@router.register("pull_request")
def on_pull_request(event: Event) -> list[JobSpec]:
    """Queue a refresh of the pull request's overlay, or its drop when the pull request was closed."""
    action = event.action
    new_base = action == "edited" and isinstance(event.data.get("changes"), dict) and "base" in event.data["changes"]
    if action not in REFRESH and action != "closed" and not new_base:
        return []
    repo = repository_of(event.data)
    number = field(event.data, "pull_request", "number", kind=int)
    details = repository_details(event.data)
    if action == "closed":
        return [drop_overlay_job(repo, number, details)]
    return [overlay_job(repo, number, {**details, "head": field(event.data, "pull_request", "head", "sha")})]


def from_fork(pull: PullRequest, repo_id: int) -> bool:
    """True when the pull request's head lives in another repository (a fork, or one deleted since)."""
    head_repo = pull.head.repo
    return head_repo is None or head_repo.id != repo_id


def run_overlay(context: Context, job: Job) -> None:
    """Bring the pull request's overlay to its head as GitHub has it now (or drop it when it is closed)."""
    payload = job.payload
    repo, number = job_repository(payload), int(payload["number"])
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id, "number": number}
    details = resolve_repository(context, payload)
    github_repo = context.app.client(repo.installation).get_repo(repo.name)
    if details is None or github_repo.id != repo.id:
        log.info("%s is now another repository; not indexing its pull request", repo.name, extra=extra)
        return
    pull = _pull(github_repo, number)
    if pull is None or pull.state != "open":
        _drop(context, repo.id, number)
        log.info("pull request #%d is %s; its overlay is dropped", number, pull.state if pull else "gone",
                 extra=extra)
        return
    size = details.get("size")
    try:
        mirror = context.mirrors.sync(repo.id, details["clone_url"], context.app.token(repo.installation),
                                      size_kb=size if isinstance(size, int) else None)
    except LimitExceeded as error:
        log.info("pull request #%d not indexed: %s", number, error, extra=extra)
        return
    default = details["default_branch"]
    config = load_config(mirror, f"refs/heads/{default}", context.settings)
    fork = from_fork(pull, repo.id)
    if fork and not config.pull_requests_from_forks:
        _drop(context, repo.id, number)  # the configuration may have allowed forks before
        log.info("pull request #%d comes from a fork; pull_requests_from_forks is off", number, extra=extra)
        return
    store = context.runtime.store
    base = pull.base.ref if store.branch_state(repo.id, pull.base.ref) is not None else default
    if store.branch_state(repo.id, base) is None:
        log.info("pull request #%d waits for its base %s to be indexed", number, base, extra=extra)
        return
    head = context.mirrors.fetch_pull(repo.id, details["clone_url"], context.app.token(repo.installation), number)
    budget = monthly_budget(context.settings, context.runtime.spend, repo.installation)
    started = time.time()
    with metering() as meter:
        try:
            report = index_overlay(context.runtime, mirror, repo, number, base, head, fork=fork,
                                   options=config.options, money_left=budget.left_usd if budget else None)
        except (OverlayError, LimitExceeded) as error:  # permanent for this head: answered from the base
            log.info("pull request #%d not indexed: %s", number, error, extra=extra)
            return
        finally:
            record_meter(context.runtime.spend, repo.installation, meter)
    if report is None:
        log.info("pull request #%d is indexed at %s already", number, head[:12], extra=extra)
        return
    log.info("indexed pull request #%d at %s on %s: %d files, %d summarized", number, head[:12], base,
             report.files_changed, report.summaries_generated, extra=extra)
    run = RunSummary(
        f"{job.id}-{job.attempts}", repo.id, repo.name, repo.installation, overlay_branch(number), head, started,
        outcome="failure" if report.functions_failed else "success", seconds=report.seconds, full=True,
        trigger="pull request", functions_total=report.functions_total, functions_added=report.functions_added,
        functions_updated=report.functions_updated, functions_removed=report.functions_removed,
        summaries_generated=report.summaries_generated, summaries_deferred=report.summaries_deferred,
        failures=len(report.functions_failed), input_tokens=report.input_tokens,
        output_tokens=report.output_tokens, cost_usd=report.cost_usd)
    try:
        context.runtime.spend.record_run(run)
    except Exception:  # a ledger that cannot be reached costs the status page a row, not the overlay
        log.warning("could not record the overlay run", exc_info=True, extra=extra)


def run_drop_overlay(context: Context, job: Job) -> None:
    """Drop a closed pull request's overlay, unless it is open again (a late delivery of an earlier close)."""
    payload = job.payload
    repo, number = job_repository(payload), int(payload["number"])
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id, "number": number}
    github_repo = context.app.client(repo.installation).get_repo(repo.name)
    pull = _pull(github_repo, number) if github_repo.id == repo.id else None
    if pull is not None and pull.state == "open":
        log.info("not dropping the overlay of pull request #%d: it is open again", number, extra=extra)
        return
    _drop(context, repo.id, number)
    log.info("dropped the overlay of pull request #%d", number, extra=extra)


def _pull(github_repo: GithubRepository, number: int) -> PullRequest | None:
    """The pull request as GitHub has it now; None when GitHub no longer has it (404)."""
    try:
        return github_repo.get_pull(number)
    except GithubException as error:
        if error.status == 404:
            return None
        raise


def _drop(context: Context, repo_id: int, number: int) -> None:
    context.runtime.store.drop_branch(repo_id, overlay_branch(number))
    context.mirrors.drop_pull(repo_id, number)


def pull_request_view(context: Context, job: Job, github_repo: GithubRepository, config: RepoConfig,
                      lang: str) -> tuple[Overlay | None, str]:
    """For a command on a pull request: its overlay when it is ready at the head, else None and a note saying what
    the answer is from (a refresh is queued when the overlay is missing or behind)."""
    payload = job.payload
    repo, number, default = job_repository(payload), int(payload["issue"]), str(payload["default_branch"])
    pull = github_repo.get_pull(number)
    notes = NOTES["en" if lang == "en" else "ko"]
    if from_fork(pull, repo.id) and not config.pull_requests_from_forks:
        return None, notes["fork"].format(base=default.replace("`", ""))
    overlay = ready_overlay(context.runtime, repo.id, number, pull.head.sha)
    if overlay is not None:
        return overlay, ""
    if pull.state != "open":
        return None, ""
    details: dict[str, Any] = {key: payload[key] for key in ("clone_url", "html_url", "default_branch", "size")
                               if key in payload}
    context.queue.add(overlay_job(repo, number, {**details, "head": pull.head.sha}), origin=job.delivery)
    return None, notes["pending"].format(base=default.replace("`", ""))
