"""The job queue interface every backend implements, and the jobs that flow through it.

Order: jobs with one ``serial`` key (one repository) run one at a time in the order they were queued. An
attempt counts when a job is claimed, so a job that kills its worker is parked after a bounded number of
attempts instead of crash-looping the service. Runs are idempotent and read the state they work on (the
branch head as fetched), so a job delivered twice or out of order converges to the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue.

    Jobs with one ``serial`` key run one at a time, in order. A job with a ``coalesce`` key merges into the
    newest job of its ``scope`` (e.g. one branch) when that one is still queued and has the same key (where the
    backend can merge queued jobs; elsewhere the run itself finds the work already done).
    """

    kind: str
    repo: str  # the repository's name, for people reading logs and status
    payload: dict[str, Any]
    repo_id: int = 0
    serial: str | None = None
    scope: str | None = None
    coalesce: str | None = None


@dataclass
class Job:
    """A claimed job; ``attempts`` counts this one."""

    id: int
    kind: str
    repo: str
    payload: dict[str, Any]
    attempts: int
    delivery: str
    deliveries: list[str] = field(default_factory=list)
    repo_id: int = 0


@dataclass(frozen=True)
class Enqueued:
    """What became of a delivery: its job ids, and whether it was new."""

    jobs: list[int]
    new: bool


class Queue(Protocol):
    """Durable jobs, deduplicated deliveries, command rate limits and one-time marks."""

    def enqueue(self, delivery: str, event: str, specs: Sequence[JobSpec], body_hash: str | None = None) -> Enqueued:
        """Record a delivery and queue its jobs once; a redelivery (same id or same signed body) returns the
        first one's jobs with ``new`` False."""
        ...

    def add(self, spec: JobSpec, origin: str = "") -> int:
        """Queue a job that no delivery carries (a re-index a command asked for, a run reconcile found)."""
        ...

    def claim(self) -> Job | None:
        """Take the next runnable job (first in line for its serial key), or None when there is none now."""
        ...

    def heartbeat(self, job_id: int) -> None:
        """Keep a running job claimed by this worker (called periodically while it runs)."""
        ...

    def release(self, job_id: int) -> None:
        """Give a claimed job back at once, without counting its attempt as a failure (the worker stops)."""
        ...

    def update_payload(self, job_id: int, changes: dict[str, Any]) -> None:
        """Remember progress of a running job (e.g. its check run) for a retry, on any worker."""
        ...

    def finish(self, job_id: int) -> None:
        """Mark a claimed job done."""
        ...

    def fail(self, job_id: int, error: str) -> str:
        """Retry a failed job later (backoff) or park it after too many attempts; the new state."""
        ...

    def recover(self) -> int:
        """At a worker's start: put back jobs a killed process left running; how many."""
        ...

    def prune(self) -> None:
        """Forget old finished jobs and deliveries."""
        ...

    def counts(self) -> dict[str, int]:
        """Jobs queued, running and parked."""
        ...

    def parked(self) -> list[dict[str, Any]]:
        """Parked jobs with their last error (``id``, ``kind``, ``repo``, ``repo_id``, ``attempts``, ``error``,
        ``updated_at``)."""
        ...

    def full_index_pending(self, repo_id: int) -> bool:
        """True while a full index of the repository is queued or running."""
        ...

    def index_pending(self, repo_id: int) -> bool:
        """True while any index run of the repository is queued or running."""
        ...

    def record_reply(self, reply: dict[str, Any], ttl: float) -> None:
        """Remember a reply the App posted (``kind``, ``id``, ``repo``, ``repo_id``, ``installation``, ``number``,
        ``at``) for ``ttl`` seconds, for the feedback pass on any worker."""
        ...

    def recent_replies(self, limit: int) -> list[dict[str, Any]]:
        """Replies remembered and not expired, newest first, at most ``limit``."""
        ...

    def record_command(self, repo_id: int, user: str, *, per_user: int, per_repo: int, window: float = 3600) -> bool:
        """Count a command against the limits of its user and repository per ``window``; False when over either."""
        ...

    def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True only for the first caller (one-time work, leases)."""
        ...

    def ping(self) -> bool:
        """True when the queue answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
