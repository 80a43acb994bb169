"""Worker threads that take jobs from the durable queue and run them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot import metrics
from bot.config import Settings
from bot.github.client import GitHubApp
from bot.github.mirror import Mirrors
from bot.queue import Job, JobQueue
from bot.runtime import Runtime

log = logging.getLogger("ragcode.workers")


@dataclass
class Context:
    """What a job needs: settings, store and models, the queue, GitHub and the mirrors."""

    settings: Settings
    runtime: Runtime
    queue: JobQueue
    app: GitHubApp
    mirrors: Mirrors


Runner = Callable[[Context, Job], None]


class Workers:
    """``count`` threads running jobs by kind; woken by ``notify`` or by polling."""

    def __init__(self, context: Context, runners: Mapping[str, Runner], count: int, poll: float = 1.0) -> None:
        self.context = context
        self.runners = dict(runners)
        self.count = count
        self.poll = poll
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads."""
        for number in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"ragcode-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake an idle worker: a job was queued."""
        with self._wake:
            self._wake.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs and wait for running ones (a job cut short is resumed on the next start)."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.context.queue.claim()
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll)
                continue
            self.run(job)
            update_gauges(self.context.queue)

    def run(self, job: Job) -> None:
        """Run one claimed job; failures are retried with backoff, then parked."""
        extra = {"delivery": job.delivery, "job": job.id, "kind": job.kind, "repo": job.repo}
        runner = self.runners.get(job.kind)
        try:
            if runner is None:
                raise RuntimeError(f"no runner for job kind {job.kind!r}")
            log.info("job started", extra=extra)
            runner(self.context, job)
        except Exception as error:  # a job's failure must never stop the worker
            state = self.context.queue.fail(job.id, f"{type(error).__name__}: {error}")
            log.exception("job failed; %s", "parked" if state == "parked" else "will retry", extra=extra)
            return
        self.context.queue.finish(job.id)
        log.info("job done", extra=extra)


def update_gauges(queue: JobQueue) -> None:
    """Refresh the queue depth and jobs-by-state gauges."""
    counts = queue.counts()
    metrics.QUEUE_DEPTH.set(counts["queued"])
    for state, number in counts.items():
        metrics.JOBS.labels(state=state).set(number)
