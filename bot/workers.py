"""Worker threads that take jobs from the durable queue and run them, keep them claimed while they run, and
give them back when the process is told to stop."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import metrics
from bot.config import Settings
from bot.github.client import GitHubApp
from bot.github.mirror import Mirrors
from bot.queue import Job, Queue
from bot.runtime import Runtime

log = logging.getLogger("ragcode.workers")


@dataclass
class Context:
    """What a job needs: settings, store and models, the queue, GitHub and the mirrors."""

    settings: Settings
    runtime: Runtime
    queue: Queue
    app: GitHubApp
    mirrors: Mirrors


Runner = Callable[[Context, Job], None]
Periodic = Callable[[Context], Any]


class Workers:
    """``count`` threads running jobs by kind; woken by ``notify`` or by polling.

    A heartbeat thread keeps running jobs claimed (SQS: their visibility and lease); each ``periodic`` task
    (name: interval in seconds, function) with an interval above 0 is run by one worker of all that share the
    queue once per interval.
    """

    def __init__(self, context: Context, runners: Mapping[str, Runner], count: int, poll: float = 1.0,
                 periodic: Mapping[str, tuple[float, Periodic]] | None = None) -> None:
        self.context = context
        self.runners = dict(runners)
        self.count = count
        self.poll = poll
        self.periodic = dict(periodic or {})
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, Job] = {}
        self._running_lock = threading.Lock()

    def start(self) -> None:
        """Start the worker threads, the heartbeat and the periodic task."""
        targets = [(self._loop, f"ragcode-worker-{number}") for number in range(self.count)]
        targets.append((self._heartbeats, "ragcode-heartbeat"))
        for name, (interval, task) in self.periodic.items():
            if interval > 0:
                targets.append((functools.partial(self._periodic_loop, name, interval, task), f"ragcode-{name}"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake an idle worker: a job was queued."""
        with self._wake:
            self._wake.notify()

    def running(self) -> list[int]:
        """Ids of the jobs running now."""
        with self._running_lock:
            return list(self._running)

    def stop(self, grace: float = 10.0) -> list[int]:
        """Stop claiming, give running jobs ``grace`` seconds to finish, then release the rest to other workers
        (or to this queue's next start); the ids released."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._running_lock:
            left = list(self._running)
            self._running.clear()
        for job_id in left:
            try:
                self.context.queue.release(job_id)
                log.info("released a job on shutdown", extra={"job": job_id})
            except Exception:  # the queue may be unreachable: the job then comes back when its claim expires
                log.warning("could not release job %s; it returns when its claim expires", job_id, exc_info=True)
        return left

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.context.queue.claim()
            except Exception:  # an unreachable queue must not end the thread
                log.exception("claiming a job failed")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll)
                continue
            if self._stopping.is_set():
                self.context.queue.release(job.id)
                return
            try:
                self.run(job)
                update_gauges(self.context.queue)
            except Exception:  # the queue failed under a finished job: its claim runs out and it is redone
                log.exception("queue operation failed after job %s", job.id)

    def run(self, job: Job) -> None:
        """Run one claimed job; failures are retried with backoff, then parked."""
        extra = {"delivery": job.delivery, "job": job.id, "kind": job.kind, "repo": job.repo, "repo_id": job.repo_id,
                 "attempt": job.attempts}
        runner = self.runners.get(job.kind)
        with self._running_lock:
            self._running[job.id] = job
        started = time.monotonic()
        try:
            if runner is None:
                raise RuntimeError(f"no runner for job kind {job.kind!r}")
            log.info("job started", extra=extra)
            runner(self.context, job)
        except Exception as error:  # a job's failure must never stop the worker
            log.exception("job failed", extra=extra)
            if self._done(job):
                state = self.context.queue.fail(job.id, f"{type(error).__name__}: {error}")
                log.info("failed job %s", "parked" if state == "parked" else "will retry", extra=extra)
            return
        if self._done(job):
            # Logged before the queue hears of it: the next job of the repository can only start after that.
            log.info("job done", extra={**extra, "seconds": round(time.monotonic() - started, 3)})
            self.context.queue.finish(job.id)

    def _done(self, job: Job) -> bool:
        """Take the job off the running list; False when ``stop`` released it meanwhile."""
        with self._running_lock:
            return self._running.pop(job.id, None) is not None

    def _heartbeats(self) -> None:
        every = max(0.5, self.context.settings.sqs_visibility_seconds / 3)
        while not self._stopping.wait(every):
            for job_id in self.running():
                try:
                    self.context.queue.heartbeat(job_id)
                except Exception:  # the next beat tries again; the claim lasts a whole visibility timeout
                    log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    def _periodic_loop(self, name: str, interval: float, task: Periodic) -> None:
        last = -1
        while not self._stopping.wait(min(interval, 300.0)):
            slot = int(time.time() // interval)
            if slot == last:
                continue
            last = slot
            try:
                if not self.context.queue.remember(f"{name}-pass-{slot}", interval):
                    continue  # another worker has this interval's pass
                task(self.context)
            except Exception:  # the next interval tries again
                log.exception("periodic %s failed", name)


def update_gauges(queue: Queue) -> None:
    """Refresh the queue depth and jobs-by-state gauges."""
    counts = queue.counts()
    metrics.QUEUE_DEPTH.set(counts["queued"])
    for state, number in counts.items():
        metrics.JOBS.labels(state=state).set(number)
