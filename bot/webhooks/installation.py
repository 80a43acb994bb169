"""Installations: index every repository the App is given; forget every repository it loses."""

from __future__ import annotations

import logging
from typing import Any

from bot.queue import Job, JobSpec
from bot.webhooks.push import index_job
from bot.webhooks.router import BadPayload, Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.installation")
router = Router()


def _repositories(event: Event, key: str) -> list[str]:
    repositories: Any = event.data.get(key) or []
    if not isinstance(repositories, list):
        raise BadPayload(f"field {key} has the wrong type")
    return [field(item, "full_name") for item in repositories]


def _full_index_jobs(event: Event, key: str) -> list[JobSpec]:
    installation = field(event.data, "installation", "id", kind=int)
    return [index_job(installation, name, full=True) for name in _repositories(event, key)]


def forget_job(repo: str) -> JobSpec:
    """A job that deletes every index and the mirror of ``repo``."""
    return JobSpec("forget", repo, {"repo": repo}, serial=f"repo:{repo}", scope=f"{repo}:*")


@router.register("installation", action="created")
def on_installation_created(event: Event) -> list[JobSpec]:
    """Index each repository of a new installation."""
    return _full_index_jobs(event, "repositories")


@router.register("installation_repositories", action="added")
def on_repositories_added(event: Event) -> list[JobSpec]:
    """Index each repository added to an installation."""
    return _full_index_jobs(event, "repositories_added")


@router.register("installation", action="deleted")
def on_installation_deleted(event: Event) -> list[JobSpec]:
    """Forget each repository of a removed installation."""
    return [forget_job(name) for name in _repositories(event, "repositories")]


@router.register("installation_repositories", action="removed")
def on_repositories_removed(event: Event) -> list[JobSpec]:
    """Forget each repository taken away from an installation."""
    return [forget_job(name) for name in _repositories(event, "repositories_removed")]


def run_forget(context: Context, job: Job) -> None:
    """Drop every indexed branch of the repository and its mirror: the App may no longer read its code."""
    repo = job.payload["repo"]
    branches = [state.branch for state in context.runtime.store.branch_states() if state.repo == repo]
    for branch in branches:
        context.runtime.store.drop_branch(repo, branch)
    context.mirrors.remove(repo)
    log.info("forgot %s (%d branches)", repo, len(branches), extra={"delivery": job.delivery, "repo": repo})
