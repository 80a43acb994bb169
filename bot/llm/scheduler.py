"""Spreads model calls over regions (or endpoints): least-loaded routing, AIMD limits, cool-downs, bounded retries.

Also ``ChatTextModel``, the summarize/generate logic that the Bedrock and OpenAI-compatible providers share.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bot.documents import Hit, Repository, Unit
from bot.llm.base import Conversation, Generation, SummaryResult
from bot.llm.prices import Price
from bot.llm.prompts import (
    ANSWER_MAX_TOKENS,
    SUMMARY_MAX_TOKENS,
    clean_answer,
    generation_messages,
    parse_summary,
    summary_messages,
)
from bot.llm.usage import Meter, active_meters
from bot.metrics import LLM_CALLS, LLM_COST, LLM_LATENCY, LLM_TOKENS

log = logging.getLogger(__name__)

T = TypeVar("T")

THROTTLE_DECREASE = 0.7  # multiplicative decrease on a throttle (CUBIC's factor: gentler than halving)
MAX_COOLDOWN_DOUBLINGS = 4  # a region that keeps failing rests at most 16 × the base cool-down


class CallError(Exception):
    """A failed model call; subclasses say what it means for the region."""


class ThrottledError(CallError):
    """The region refused the call for load (HTTP 429): lower its limit and retry, elsewhere if possible."""


class UnavailableError(CallError):
    """5xx, timeout or connection error: the region cools down and the call fails over."""


class RequestError(CallError):
    """The region rejected this request (4xx, unreadable reply): retry only in a region not tried yet."""


class SchedulerError(RuntimeError):
    """A call that failed on every attempt it was allowed."""


@dataclass
class Reply:
    """What a call returns: its value and the tokens it used."""

    value: Any
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _Region:
    name: str
    ceiling: int
    limit: float
    inflight: int = 0
    cooldown_until: float = 0.0
    streak: int = 0  # consecutive cool-downs without a success in between
    last_change: float = 0.0  # when the limit was last cut or the cool-down began

    def capacity(self) -> int:
        return max(1, int(self.limit))


@dataclass(order=True)
class _Task:
    ready_at: float
    seq: int
    index: int = field(compare=False)
    attempts: int = field(default=0, compare=False)
    avoid: set[str] = field(default_factory=set, compare=False)  # regions that failed this task
    rejected: set[str] = field(default_factory=set, compare=False)  # regions that rejected the request itself
    last_error: str = field(default="", compare=False)


@dataclass
class _Job(Generic[T]):
    items: Sequence[T]
    call: Callable[[str, T], Reply]
    on_done: Callable[[int, Any], None] | None
    heap: list[_Task]
    remaining: int
    results: dict[int, Any] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    meters: tuple[Meter, ...] = ()  # of the caller's ``metering()`` blocks


class RegionScheduler:
    """Runs calls on up to ``concurrency`` slots per region, always on the least-loaded healthy region.

    A throttle cuts that region's limit by 30% (additive increase of 1/limit per success brings it back); a 5xx,
    timeout or connection error cools the region down (doubling while it keeps failing) and lets one probe
    through afterwards. Each item gets at most ``max_attempts`` calls in all regions together. Calls are counted
    under ``model`` (metrics and meters) and priced at ``price`` when it is known.
    """

    def __init__(
        self,
        regions: Sequence[str],
        concurrency: int,
        max_attempts: int,
        *,
        cooldown: float = 5.0,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        model: str = "",
        price: Price | None = None,
    ) -> None:
        if not regions:
            raise ValueError("at least one region is needed")
        self._regions = {name: _Region(name, concurrency, float(concurrency)) for name in regions}
        self._max_attempts = max(1, max_attempts)
        self._cooldown = cooldown
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self.model = model
        self.price = price
        self._usage = Meter()  # every call since creation, for usage()

    @property
    def regions(self) -> list[str]:
        """Region names in configuration order."""
        return list(self._regions)

    def capacity(self) -> int:
        """Most calls in flight over all regions."""
        return sum(r.ceiling for r in self._regions.values())

    def limits(self) -> dict[str, float]:
        """The current (AIMD-adjusted) concurrency limit of each region."""
        with self._cv:
            return {name: r.limit for name, r in self._regions.items()}

    def usage(self) -> dict[str, dict[str, float]]:
        """Per region: calls sent, input/output tokens, failed calls (errors, throttles) and seconds spent."""
        counted = self._usage.by_region(self.model)
        idle = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0, "throttles": 0, "seconds": 0.0}
        return {name: counted.get(name) or dict(idle) for name in self._regions}

    def map(
        self,
        items: Sequence[T],
        call: Callable[[str, T], Reply],
        on_done: Callable[[int, Any], None] | None = None,
    ) -> tuple[dict[int, Any], dict[int, str]]:
        """Run ``call(region, item)`` for every item; values and error texts by item index.

        ``on_done(index, value)`` runs (outside the scheduler's lock) as each item succeeds or finally fails
        (``value`` None), so results can be used as they arrive.
        """
        job = self._job(items, call, on_done)
        if not items:
            return {}, {}
        workers = min(len(items), self.capacity())
        if workers == 1:
            self._work(job)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ragcode-llm") as pool:
                for future in [pool.submit(self._work, job) for _ in range(workers)]:
                    future.result()
        return job.results, job.failures

    def call(self, call: Callable[[str], Reply]) -> Any:
        """One call with the same routing and retries, in the caller's thread; raises SchedulerError."""
        results, failures = self.map([None], lambda region, _item: call(region))
        if failures:
            raise SchedulerError(failures[0])
        return results[0]

    def _job(self, items: Sequence[T], call: Callable[[str, T], Reply],
             on_done: Callable[[int, Any], None] | None) -> _Job[T]:
        heap = [_Task(0.0, next(self._seq), index) for index in range(len(items))]
        return _Job(items, call, on_done, heap, len(items), meters=active_meters())

    def _work(self, job: _Job[Any]) -> None:
        while True:
            with self._cv:
                picked = self._next(job)
                if picked is None:
                    return
                task, region = picked
            started = time.monotonic()
            outcome, message = "ok", ""
            reply: Reply | None = None
            try:
                reply = job.call(region.name, job.items[task.index])
            except ThrottledError as error:
                outcome, message = "throttled", str(error) or "throttled"
            except UnavailableError as error:
                outcome, message = "unavailable", str(error) or "unavailable"
            except RequestError as error:
                outcome, message = "error", str(error) or "request rejected"
            except Exception as error:  # a bug or an unexpected reply must not kill the worker or lose the item
                log.warning("unexpected error from %s", region.name, exc_info=True)
                outcome, message = "error", f"{type(error).__name__}: {error}"
            elapsed = time.monotonic() - started
            self._count(job, region.name, outcome, reply, elapsed)
            with self._cv:
                done = self._settle(job, task, region, started, elapsed, outcome, reply, message)
                self._cv.notify_all()
            if done and job.on_done is not None:
                job.on_done(task.index, job.results.get(task.index))

    def _count(self, job: _Job[Any], region: str, outcome: str, reply: Reply | None, elapsed: float) -> None:
        """Metrics and the job's meters for one call."""
        tokens_in, tokens_out = (reply.input_tokens, reply.output_tokens) if reply is not None else (0, 0)
        cost = self.price.cost(tokens_in, tokens_out) if self.price is not None else 0.0
        LLM_CALLS.labels(region, outcome).inc()
        LLM_LATENCY.labels(region).observe(elapsed)
        if reply is not None:
            LLM_TOKENS.labels(region, self.model, "input").inc(tokens_in)
            LLM_TOKENS.labels(region, self.model, "output").inc(tokens_out)
            LLM_COST.labels(region, self.model).inc(cost)
        for meter in (self._usage, *job.meters):
            meter.record(self.model, region, outcome, tokens_in, tokens_out, elapsed, cost)

    def _next(self, job: _Job[Any]) -> tuple[_Task, _Region] | None:
        """Wait (holding the condition) for a ready task and a free slot; None when the job is finished."""
        while True:
            if job.remaining == 0:
                return None
            now = time.monotonic()
            timeout: float | None = None
            if job.heap:
                task = job.heap[0]
                if task.ready_at <= now:
                    region = self._pick(task, now)
                    if region is not None:
                        heapq.heappop(job.heap)
                        region.inflight += 1
                        return task, region
                    timeout = self._next_cooldown_end(now)
                else:
                    timeout = task.ready_at - now
            self._cv.wait(timeout)

    def _pick(self, task: _Task, now: float) -> _Region | None:
        open_regions = [
            r for r in self._regions.values()
            if r.cooldown_until <= now and r.inflight < r.capacity() and r.name not in task.rejected
        ]
        if not open_regions:
            return None
        fresh = [r for r in open_regions if r.name not in task.avoid]
        pool = fresh or open_regions
        return min(pool, key=lambda r: (r.inflight / r.capacity(), r.inflight, random.random()))

    def _next_cooldown_end(self, now: float) -> float | None:
        ends = [r.cooldown_until - now for r in self._regions.values() if r.cooldown_until > now]
        return min(ends) if ends else None

    def _settle(
        self, job: _Job[Any], task: _Task, region: _Region, started: float, elapsed: float,
        outcome: str, reply: Reply | None, message: str,
    ) -> bool:
        """Record one call's outcome (holding the condition); True when the task is finished."""
        region.inflight -= 1
        now = time.monotonic()
        if reply is not None:
            region.limit = min(float(region.ceiling), region.limit + 1.0 / max(region.limit, 1.0))
            region.streak = 0
            job.results[task.index] = reply.value
            job.remaining -= 1
            return True
        if outcome == "throttled":
            if started >= region.last_change:  # one cut per burst: calls sent before the last cut add nothing
                region.limit = max(1.0, region.limit * THROTTLE_DECREASE)
                region.last_change = now
                log.info("region %s throttled; limit now %.1f", region.name, region.limit)
        elif outcome == "unavailable" and started >= region.last_change:
            region.streak = min(region.streak + 1, MAX_COOLDOWN_DOUBLINGS + 1)
            rest = self._cooldown * 2 ** (region.streak - 1)
            region.cooldown_until = now + rest
            region.limit = 1.0  # the first call after the rest is a probe
            region.last_change = now
            log.warning("region %s unavailable (%s); cooling down %.1fs", region.name, message, rest)
        task.attempts += 1
        task.last_error = f"{region.name}: {message}"
        task.avoid.add(region.name)
        if outcome == "error":
            task.rejected.add(region.name)
        if task.attempts >= self._max_attempts or task.rejected >= set(self._regions):
            job.failures[task.index] = f"{task.last_error} (after {task.attempts} attempts)"
            job.remaining -= 1
            return True
        delay = random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (task.attempts - 1)))
        task.ready_at = now + delay
        task.seq = next(self._seq)
        heapq.heappush(job.heap, task)
        return False


class ChatTextModel:
    """``TextModel`` on top of a chat call and a scheduler; providers implement ``_chat``."""

    name: str
    instant = False

    def __init__(self, name: str, scheduler: RegionScheduler) -> None:
        self.name = name
        self._scheduler = scheduler

    def _chat(self, region: str, system: str, user: str, max_tokens: int) -> Reply:
        """One chat completion in ``region``; the Reply's value is the answer text."""
        raise NotImplementedError

    def summarize(
        self, units: Sequence[Unit], lang: str, progress: Callable[[int], None] | None = None,
        on_summary: Callable[[str, str], None] | None = None,
    ) -> SummaryResult:
        """One call per distinct code; ``progress(n)`` with the number of units each finished call covers, and
        ``on_summary(hash, summary)`` as each summary arrives."""
        by_hash: dict[str, list[Unit]] = {}
        for unit in units:
            by_hash.setdefault(unit.hash, []).append(unit)
        hashes = list(by_hash)

        def summarize_one(region: str, code_hash: str) -> Reply:
            system, user = summary_messages(by_hash[code_hash][0], lang)
            reply = self._chat(region, system, user, SUMMARY_MAX_TOKENS)
            reply.value = parse_summary(reply.value)
            if not reply.value:
                raise RequestError("the model returned no summary")
            return reply

        def done(index: int, value: Any) -> None:
            if value and on_summary is not None:
                on_summary(hashes[index], value)
            if progress is not None:
                progress(len(by_hash[hashes[index]]))

        results, failures = self._scheduler.map(hashes, summarize_one, done)
        result = SummaryResult({hashes[i]: text for i, text in results.items()})
        for index, error in failures.items():
            names = ", ".join(f"{u.path}:{u.name}" for u in by_hash[hashes[index]])
            log.warning("no summary for %s: %s", names, error)
            result.failed[hashes[index]] = error
        return result

    def generate(self, request: str, hits: Sequence[Hit], lang: str, repo: Repository,
                 conversation: Conversation | None = None) -> Generation:
        """Code for ``request`` from the retrieved functions of ``repo`` (hits of other repositories are dropped)
        and the thread's ``conversation``."""
        own = [hit for hit in hits if hit.document.repo_id == repo.id]
        if len(own) < len(hits):
            log.warning("dropped %d hits from other repositories than %s", len(hits) - len(own), repo.id)
        system, user = generation_messages(request, own, lang, repo.name, conversation=conversation)

        def answer(region: str) -> Reply:
            reply = self._chat(region, system, user, ANSWER_MAX_TOKENS)
            reply.value = clean_answer(reply.value)
            if not reply.value:
                raise RequestError("the model returned an empty answer")
            return reply

        return Generation(markdown=self._scheduler.call(answer), llm=self.name)

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens, errors, throttles and seconds per region since creation."""
        return self._scheduler.usage()
