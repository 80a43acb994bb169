"""Installations: a full index of the default branch of every repository the App is given."""

from __future__ import annotations

from typing import Any

from bot.queue import JobSpec
from bot.webhooks.push import index_job
from bot.webhooks.router import BadPayload, Event, Router, field

router = Router()


def _full_index_jobs(event: Event, key: str) -> list[JobSpec]:
    installation = field(event.data, "installation", "id", kind=int)
    repositories: Any = event.data.get(key) or []
    if not isinstance(repositories, list):
        raise BadPayload(f"field {key} has the wrong type")
    return [index_job(installation, field(item, "full_name"), full=True) for item in repositories]


@router.register("installation", action="created")
def on_installation_created(event: Event) -> list[JobSpec]:
    """Index each repository of a new installation."""
    return _full_index_jobs(event, "repositories")


@router.register("installation_repositories", action="added")
def on_repositories_added(event: Event) -> list[JobSpec]:
    """Index each repository added to an installation."""
    return _full_index_jobs(event, "repositories_added")
