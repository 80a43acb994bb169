"""Job queues: one module per backend behind ``Queue`` (SQLite on one machine, SQS and DynamoDB on AWS)."""

from __future__ import annotations

from bot.config import Settings
from bot.queue.base import Enqueued, Job, JobSpec, Queue

__all__ = ["Enqueued", "Job", "JobSpec", "Queue", "make_queue"]


def make_queue(settings: Settings) -> Queue:
    """The queue that ``RAGCODE_QUEUE`` names."""
    if settings.queue == "sqs":
        from bot.queue.sqs import SqsQueue

        return SqsQueue(settings)
    from bot.queue.sqlite import JobQueue

    return JobQueue(settings.home / "queue.sqlite3", max_attempts=settings.job_max_attempts,
                    backoff=settings.job_backoff_seconds)
