"""Pushes: index the pushed branch incrementally (with a check run), drop deleted branches."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from github.CheckRun import CheckRun
from github.Repository import Repository as GithubRepository

from bot import logs
from bot.config import LimitExceeded
from bot.documents import Repository
from bot.github.mirror import branch_head
from bot.indexer.estimate import Estimate
from bot.indexer.pipeline import index_branch
from bot.llm.usage import metering
from bot.markdown import inline_code
from bot.queue import Job, JobSpec
from bot.repo_config import load_config
from bot.spend import Budget, Ledger, RunSummary, monthly_budget, record_meter
from bot.webhooks import checks
from bot.webhooks.router import Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.push")
router = Router()
PROGRESS_EVERY = 5.0  # seconds between check run updates while indexing


def index_job(repo: Repository, *, branch: str | None = None, full: bool = False, after: str | None = None,
              details: dict[str, Any] | None = None) -> JobSpec:
    """A run that indexes ``branch`` (None: the default branch) of ``repo``; runs of one repository serialize."""
    payload: dict[str, Any] = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id,
                               "branch": branch, "full": full, **(details or {})}
    if after is not None:
        payload["after"] = after
    return JobSpec("index", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}",
                   scope=f"{repo.id}:{branch or ''}", coalesce=f"index:{repo.id}:{branch or ''}")


def drop_job(repo: Repository, branch: str, details: dict[str, Any]) -> JobSpec:
    """A job that drops the index of a deleted ``branch`` of ``repo``."""
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "branch": branch, **details}
    return JobSpec("drop_branch", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}",
                   scope=f"{repo.id}:{branch}")


def repository_of(data: dict[str, Any]) -> Repository:
    """The repository and installation a payload is about, by their numeric ids."""
    return Repository(field(data, "repository", "id", kind=int), field(data, "repository", "full_name"),
                      field(data, "installation", "id", kind=int))


def repository_details(data: dict[str, Any]) -> dict[str, Any]:
    """Clone URL, web URL, default branch and size (KB, when given) from a payload's ``repository``."""
    details = {
        "clone_url": field(data, "repository", "clone_url"),
        "html_url": field(data, "repository", "html_url"),
        "default_branch": field(data, "repository", "default_branch"),
    }
    size = data["repository"].get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        details["size"] = size
    return details


@router.register("push")
def on_push(event: Event) -> list[JobSpec]:
    """Queue an index run for a branch push or a drop for a branch deletion; tags are ignored."""
    ref = field(event.data, "ref")
    if not ref.startswith("refs/heads/"):
        return []
    repo = repository_of(event.data)
    branch = ref.removeprefix("refs/heads/")
    details = repository_details(event.data)
    if event.data.get("deleted") is True:
        return [drop_job(repo, branch, details)]
    after = field(event.data, "after")
    return [index_job(repo, branch=branch, after=after, details=details)]


@router.register("check_run", action="rerequested")
def on_check_rerequested(event: Event) -> list[JobSpec]:
    """The "Re-run" button of a ragcode check run: index its branch again, reusing that check run when the
    commit is still the branch head (a newer head is indexed instead, and the check says so)."""
    if field(event.data, "check_run", "name") != checks.NAME:
        return []
    suite = field(event.data, "check_run", "check_suite", kind=dict)
    branch = suite.get("head_branch")
    if not isinstance(branch, str) or not branch:
        return []  # a commit on no branch (a fork's pull request): nothing of ours to run
    repo = repository_of(event.data)
    sha = field(event.data, "check_run", "head_sha")
    details = {**repository_details(event.data), "rerun": True,
               "check_run": {"id": field(event.data, "check_run", "id", kind=int), "head": sha}}
    # Never merged into a queued push (its check run would be lost); a later push does not merge into it either.
    return [replace(index_job(repo, branch=branch, after=sha, details=details), coalesce=None)]


def job_repository(payload: dict[str, Any]) -> Repository:
    """The repository a job is about."""
    return Repository(int(payload["repo_id"]), str(payload["repo"]), int(payload["installation"]))


def resolve_repository(context: Context, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Clone URL, web URL, default branch and size: from the payload, else from ``GET /repos/{owner}/{repo}``.

    None when the name now belongs to another repository (ours was renamed, deleted or transferred since).
    """
    if all(payload.get(key) for key in ("clone_url", "html_url", "default_branch")):
        return {key: payload[key] for key in ("clone_url", "html_url", "default_branch", "size") if key in payload}
    remote = context.app.client(payload["installation"]).get_repo(payload["repo"])
    if remote.id != int(payload["repo_id"]):
        return None
    return {"clone_url": remote.clone_url, "html_url": remote.html_url, "default_branch": remote.default_branch,
            "size": remote.size}


def run_index(context: Context, job: Job) -> None:
    """Fetch the mirror and index the branch head as fetched, reporting in a check run on that commit."""
    payload = job.payload
    repo = job_repository(payload)
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id}
    details = resolve_repository(context, payload)
    if details is None:
        log.warning("%s is now another repository; not indexing it", repo.name, extra=extra)
        return
    size = details.get("size")
    try:
        mirror = context.mirrors.sync(repo.id, details["clone_url"], context.app.token(repo.installation),
                                      size_kb=size if isinstance(size, int) else None)
    except LimitExceeded as error:  # permanent until the operator raises the limit: report it, do not retry
        log.warning("not indexed: %s", error, extra=extra)
        if payload.get("after"):
            github_repo = context.app.client(repo.installation).get_repo(repo.name)
            check = github_repo.create_check_run(name=checks.NAME, head_sha=payload["after"], status="in_progress")
            reference = logs.reference()
            _complete(check, "failure", *checks.failure(reference, (), str(error)))
        return
    default_branch = details["default_branch"]
    branch = payload.get("branch") or default_branch
    config = load_config(mirror, f"refs/heads/{default_branch}", context.settings)
    github_repo = context.app.client(repo.installation).get_repo(repo.name)
    if not payload.get("full") and not config.indexes(branch, default_branch):
        log.info("branch %s is not configured for indexing", branch, extra=extra)
        _supersede(github_repo, payload, None)
        return
    head = branch_head(mirror, branch)
    if head is None:
        log.info("branch %s no longer exists", branch, extra=extra)
        _supersede(github_repo, payload, None)
        return
    _supersede(github_repo, payload, head)
    indexed = already_indexed(context, payload, repo.id, branch, head)
    _cover(github_repo, payload, branch, head, indexed)
    if indexed:
        log.info("%s is already indexed at %s by an earlier run; nothing to do", branch, head[:12], extra=extra)
        return
    check = _check_run(context, job, github_repo, head)
    runtime = context.runtime
    budget = monthly_budget(context.settings, runtime.spend, repo.installation)
    progress = _Progress(check)
    # a first index (or a full one) shows its estimate before any model is called
    estimating = bool(payload.get("full")) or runtime.store.branch_state(repo.id, branch) is None
    run = RunSummary(f"{job.id}-{job.attempts}", repo.id, repo.name, repo.installation, branch, head, time.time(),
                     full=bool(payload.get("full")), trigger=trigger_of(payload))
    _record_run(runtime.spend, run, extra)
    with metering() as meter:
        try:
            report = index_branch(
                runtime, mirror, repo, branch, head, full=bool(payload.get("full")), options=config.options,
                progress=progress, money_left=budget.left_usd if budget else None,
                on_plan=(lambda estimate: progress.planned(estimate, budget)) if estimating else None,
            )
        except Exception as error:
            reference = logs.reference()
            log.exception("indexing failed", extra=extra | {"reference": reference})
            text, body = checks.failure(reference, config.errors,
                                        str(error) if isinstance(error, LimitExceeded) else "")
            _complete(check, "failure", text, body)
            _record_run(runtime.spend, replace(
                run, outcome="error", seconds=time.time() - run.started_at, input_tokens=int(meter.total("input_tokens")),
                output_tokens=int(meter.total("output_tokens")), cost_usd=meter.total("cost_usd")), extra)
            raise
        finally:  # what was spent counts against the budget, also when the run failed half-way
            record_meter(runtime.spend, repo.installation, meter)
    conclusion = "failure" if report.functions_failed else "success"
    _record_run(runtime.spend, replace(
        run, outcome=conclusion, seconds=report.seconds, functions_total=report.functions_total,
        functions_added=report.functions_added, functions_updated=report.functions_updated,
        functions_removed=report.functions_removed, summaries_generated=report.summaries_generated,
        summaries_deferred=report.summaries_deferred, failures=len(report.functions_failed),
        input_tokens=report.input_tokens, output_tokens=report.output_tokens, cost_usd=report.cost_usd), extra)
    _complete(check, conclusion, checks.title(report, config.errors), checks.summary(report, config.errors))
    log.info("indexed %s@%s: %s", branch, head[:12], checks.title(report), extra=extra)


def trigger_of(payload: dict[str, Any]) -> str:
    """What queued an index job, for people reading the status page."""
    if payload.get("reason") == "reconcile":
        return "reconcile"
    if payload.get("rerun"):
        return "re-run"
    return "push" if payload.get("after") else "full index" if payload.get("full") else "index"


def _record_run(ledger: Ledger, run: RunSummary, extra: dict[str, Any]) -> None:
    """Record the run in the ledger; a ledger that cannot be reached costs the status page a row, not the run."""
    try:
        ledger.record_run(run)
    except Exception:  # boto3, sqlite3: the run goes on
        log.warning("could not record the run in the ledger", exc_info=True, extra=extra)


def already_indexed(context: Context, payload: dict[str, Any], repo_id: int, branch: str, head: str) -> bool:
    """True when the branch's index is complete at ``head`` with the current embedder and the job asks for nothing
    more (queued runs of one branch that an earlier run covered finish at once; an interrupted run's index is
    finished instead)."""
    if payload.get("full") or payload.get("rerun"):
        return False
    state = context.runtime.store.branch_state(repo_id, branch)
    if state is None or state.commit != head or not state.complete:
        return False
    embedder = context.runtime.embedder
    return (state.embedder, state.dimension) == (embedder.name, embedder.dimension)


def run_drop(context: Context, job: Job) -> None:
    """Drop a deleted branch's index, never the default branch's, and only while GitHub has no such branch
    (a drop delivered late must not undo a newer push that created the branch again)."""
    payload = job.payload
    extra = {"delivery": job.delivery, "job": job.id, "repo": payload["repo"], "repo_id": payload["repo_id"]}
    if payload["branch"] == payload.get("default_branch"):
        log.warning("refusing to drop the default branch %s", payload["branch"], extra=extra)
        return
    details = resolve_repository(context, payload)
    if details is not None:
        repo = job_repository(payload)
        mirror = context.mirrors.sync(repo.id, details["clone_url"], context.app.token(repo.installation))
        if branch_head(mirror, payload["branch"]) is not None:
            log.info("not dropping branch %s: it exists again", payload["branch"], extra=extra)
            return
    context.runtime.store.drop_branch(int(payload["repo_id"]), payload["branch"])
    log.info("dropped the index of branch %s", payload["branch"], extra=extra)


def _supersede(github_repo: GithubRepository, payload: dict[str, Any], head: str | None) -> None:
    """Complete the check runs of earlier attempts on other heads: this run covers their pushes."""
    runs = [*payload.get("superseded_checks", []), payload.get("check_run")]
    for run in runs:
        if not run or run.get("head") == head:
            continue
        try:
            _complete(github_repo.get_check_run(run["id"]), "neutral", "Superseded by a newer push",
                      f"A newer push to this branch is indexed{f' at `{head[:12]}`' if head else ''} instead.")
        except Exception:  # a check run that cannot be completed must not stop the run
            log.warning("could not complete superseded check run %s", run.get("id"), exc_info=True)


def _cover(github_repo: GithubRepository, payload: dict[str, Any], branch: str, head: str, indexed: bool) -> None:
    """Complete a check run on the pushed commit when the branch head has moved past it: this run (or, when
    ``indexed``, an earlier one) covers the push."""
    after = payload.get("after")
    known = payload.get("check_run") or {}
    if not isinstance(after, str) or after == head or known.get("head") == after:
        return
    how = "by an earlier run; nothing was left to do" if indexed else "by this run"
    try:
        github_repo.create_check_run(
            name=checks.NAME, head_sha=after, status="completed", conclusion="neutral",
            completed_at=datetime.now(UTC),
            output={"title": "Covered by a newer push",
                    "summary": f"A newer push to {inline_code(branch)} is indexed at `{head[:12]}` ({how})."})
    except Exception:  # the pushed commit may be gone (force-push); the run itself goes on
        log.warning("could not report the covered push %s", after[:12], exc_info=True)


def _check_run(context: Context, job: Job, github_repo: GithubRepository, head: str) -> CheckRun:
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
        self.note = ""  # the estimate, kept on every update

    def planned(self, estimate: Estimate, budget: Budget | None) -> None:
        """Show the run's estimate (before any model call)."""
        text, body = checks.planned(estimate, budget)
        self.note = body
        self._edit(text, body)

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        self._edit(*checks.progress(stage, done, total, self.note))

    def _edit(self, text: str, body: str) -> None:
        try:
            self.check.edit(status="in_progress", output={"title": text[:250], "summary": body})
        except Exception:  # progress is cosmetic; the run goes on
            log.warning("check run progress update failed", exc_info=True)
