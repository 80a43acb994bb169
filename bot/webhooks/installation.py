"""Installations and repositories: index what the App is given, forget what it loses, follow renames.

Destructive events are not taken on trust: a replayed ``installation.deleted`` carries a valid signature, so
before anything is forgotten the runner asks GitHub whether the installation can still read the repository.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.documents import Repository
from bot.queue import Job, JobSpec
from bot.webhooks.push import index_job, repository_of
from bot.webhooks.router import BadPayload, Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.installation")
router = Router()


def _repositories(event: Event, key: str) -> list[Repository]:
    installation = field(event.data, "installation", "id", kind=int)
    items: Any = event.data.get(key) or []
    if not isinstance(items, list):
        raise BadPayload(f"field {key} has the wrong type")
    return [Repository(field(item, "id", kind=int), field(item, "full_name"), installation) for item in items]


def forget_job(repo: Repository, reason: str) -> JobSpec:
    """A job that deletes every index, cache and the mirror of ``repo`` once GitHub confirms the loss."""
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "reason": reason}
    return JobSpec("forget", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}", scope=f"{repo.id}:*")


@router.register("installation", action="created")
def on_installation_created(event: Event) -> list[JobSpec]:
    """Index each repository of a new installation."""
    return [index_job(repo, full=True) for repo in _repositories(event, "repositories")]


@router.register("installation_repositories", action="added")
def on_repositories_added(event: Event) -> list[JobSpec]:
    """Index each repository added to an installation."""
    return [index_job(repo, full=True) for repo in _repositories(event, "repositories_added")]


@router.register("installation", action="deleted")
def on_installation_deleted(event: Event) -> list[JobSpec]:
    """Forget each repository of a removed installation."""
    return [forget_job(repo, "installation deleted") for repo in _repositories(event, "repositories")]


@router.register("installation_repositories", action="removed")
def on_repositories_removed(event: Event) -> list[JobSpec]:
    """Forget each repository taken away from an installation."""
    return [forget_job(repo, "removed from the installation")
            for repo in _repositories(event, "repositories_removed")]


@router.register("repository", action="deleted")
def on_repository_deleted(event: Event) -> list[JobSpec]:
    """Forget a deleted repository: a new one under its name must never see its index."""
    return [forget_job(repository_of(event.data), "repository deleted")]


@router.register("repository", action="transferred")
def on_repository_transferred(event: Event) -> list[JobSpec]:
    """Forget a repository that moved to another owner (its new installation indexes it afresh)."""
    return [forget_job(repository_of(event.data), "repository transferred")]


@router.register("repository", action="renamed")
def on_repository_renamed(event: Event) -> list[JobSpec]:
    """Record a repository's new name; its index, keyed by id, stays."""
    repo = repository_of(event.data)
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id}
    return [JobSpec("rename", repo.name, payload, repo_id=repo.id, serial=f"repo:{repo.id}")]


def run_forget(context: Context, job: Job) -> None:
    """Drop every branch, cache and the mirror of the repository, after GitHub confirms the App lost it."""
    payload = job.payload
    repo_id, installation = int(payload["repo_id"]), int(payload["installation"])
    extra = {"delivery": job.delivery, "job": job.id, "repo": payload["repo"], "repo_id": repo_id}
    accessible = context.app.accessible_repository_ids(installation)
    if accessible is not None and repo_id in accessible:
        log.warning("not forgetting %s (%s): the installation can still read it; the event was a replay or "
                    "is out of date", payload["repo"], payload.get("reason", ""), extra=extra)
        return
    context.runtime.store.forget_repository(repo_id)
    context.mirrors.remove(repo_id)
    log.info("forgot %s (%s)", payload["repo"], payload.get("reason", ""), extra=extra)


def run_rename(context: Context, job: Job) -> None:
    """Record the name GitHub gives the repository now (a replayed rename cannot set an old name)."""
    payload = job.payload
    repo_id = int(payload["repo_id"])
    remote = context.app.client(int(payload["installation"])).get_repo(payload["repo"])
    extra = {"delivery": job.delivery, "job": job.id, "repo": payload["repo"], "repo_id": repo_id}
    if remote.id != repo_id:
        log.warning("not renaming: %s is now another repository", payload["repo"], extra=extra)
        return
    context.runtime.store.rename_repository(repo_id, remote.full_name)
    log.info("repository renamed to %s", remote.full_name, extra=extra)
