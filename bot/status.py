"""What the operators' status page shows, gathered from the store, the queue, the shared ledger, GitHub (branch
heads) and this process's own metrics. Each part is bounded, and a part that cannot be read says so instead
of failing the page.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot import logs, metrics
from bot.config import Settings
from bot.documents import BranchState
from bot.freshness import Freshness, Head
from bot.llm.usage import Figures
from bot.queue import Queue
from bot.spend import DayFigures, Ledger, RunSummary
from bot.store.base import Store

log = logging.getLogger("ragcode.status")

MAX_BRANCHES = 100  # branch rows shown (the first by repository name); the rest are counted
MAX_COUNTED = 10_000  # branches counted beyond those shown, at most (each page reads them)
MAX_RUNS = 25
MAX_RUNNING = 20
MAX_PARKED = 20
MAX_INSTALLATIONS = 50
MAX_ERROR_CHARS = 300  # of a parked job's error
CHART_DAYS = 14
REGION_DAYS = 7


@dataclass(frozen=True)
class BranchRow:
    """One indexed branch with its head, its run in progress and its last finished run."""

    state: BranchState
    head: Head
    running: RunSummary | None = None
    last_run: RunSummary | None = None


@dataclass(frozen=True)
class ProcessRegion:
    """One region's model calls in this process since it started (Prometheus): by outcome, and latency."""

    region: str
    outcomes: dict[str, int]
    timed: int = 0  # calls with a measured latency
    mean_seconds: float = 0.0
    p50_seconds: float | None = None  # upper bound of the histogram bucket holding the median
    p95_seconds: float | None = None


@dataclass(frozen=True)
class Spending:
    """An installation's model spending this month, with a few of its repositories' names."""

    installation: int
    usd: float
    repositories: tuple[str, ...] = ()


@dataclass
class Process:
    """Which process drew the page."""

    role: str
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)


@dataclass
class StatusData:
    """Everything the page shows; ``errors`` names the parts that could not be read (by part)."""

    generated_at: float
    process: Process
    settings: Settings
    branches: list[BranchRow] = field(default_factory=list)
    branches_more: int = 0
    repositories: int = 0
    running: list[RunSummary] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)
    queue: dict[str, int] = field(default_factory=dict)
    parked: list[dict[str, Any]] = field(default_factory=list)
    parked_more: int = 0
    days: list[DayFigures] = field(default_factory=list)
    regions: dict[str, Figures] = field(default_factory=dict)
    process_regions: list[ProcessRegion] = field(default_factory=list)
    spending: list[Spending] = field(default_factory=list)
    spending_more: int = 0
    feedback: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Sources:
    """Where the page's figures come from; the store is opened on first use."""

    settings: Settings
    queue: Queue
    ledger: Callable[[], Ledger]
    store: Callable[[], Store]
    freshness: Freshness
    process: Process


def collect(sources: Sources) -> StatusData:
    """Gather the page's figures; each part that fails is named in ``errors`` and logged with a reference."""
    data = StatusData(time.time(), sources.process, sources.settings)
    states: list[BranchState] = []
    installations: dict[int, list[str]] = {}

    def part(name: str, read: Callable[[], None]) -> None:
        try:
            read()
        except Exception as error:  # one part's store, queue, table or network failure must not cost the page
            reference = logs.reference()
            log.warning("status page: %s unavailable", name, exc_info=True, extra={"reference": reference})
            data.errors[name] = f"unavailable ({type(error).__name__}; reference {reference} in the logs)"

    def read_states() -> None:
        every = sources.store().all_branch_states()
        states.extend(itertools.islice(every, MAX_BRANCHES))
        data.branches_more = sum(1 for _ in itertools.islice(every, MAX_COUNTED))
        data.repositories = len({state.repo_id for state in states})
        for state in states:
            names = installations.setdefault(state.installation, [])
            if state.repo not in names:
                names.append(state.repo)

    def read_runs() -> None:
        ledger = sources.ledger()
        data.running = ledger.running_runs()[:MAX_RUNNING]
        data.runs = ledger.recent_runs(MAX_RUNS)

    def read_queue() -> None:
        data.queue = sources.queue.counts()
        parked = sources.queue.parked()
        data.parked_more = max(0, len(parked) - MAX_PARKED)
        data.parked = [{**job, "error": clip(str(job.get("error") or ""), MAX_ERROR_CHARS)}
                       for job in sorted(parked, key=_newest_first)[:MAX_PARKED]]

    def read_figures() -> None:
        ledger = sources.ledger()
        data.days = ledger.daily(CHART_DAYS)
        data.regions = ledger.region_usage(REGION_DAYS)

    def read_spending() -> None:
        spent = sorted(sources.ledger().month_spending().items(), key=lambda item: -item[1])
        data.spending_more = max(0, len(spent) - MAX_INSTALLATIONS)
        data.spending = [Spending(number, usd, tuple(installations.get(number, [])[:3]))
                         for number, usd in spent[:MAX_INSTALLATIONS]]

    def read_feedback() -> None:
        data.feedback = sources.ledger().feedback_totals()

    part("repositories", read_states)
    part("runs", read_runs)
    part("queue", read_queue)
    part("figures", read_figures)
    part("spending", read_spending)
    part("feedback", read_feedback)
    data.process_regions = process_regions()
    heads: dict[tuple[int, str], Head] = {}
    if states:
        def read_heads() -> None:
            heads.update(sources.freshness.heads(states))

        part("heads", read_heads)
    running = {(run.repo_id, run.branch): run for run in reversed(data.running)}
    last: dict[tuple[int, str], RunSummary] = {}
    for run in reversed(data.runs):
        last[(run.repo_id, run.branch)] = run
    data.branches = [BranchRow(s, heads.get((s.repo_id, s.branch), Head()), running.get((s.repo_id, s.branch)),
                               last.get((s.repo_id, s.branch))) for s in states]
    return data


def _newest_first(job: dict[str, Any]) -> tuple[int, int]:
    return -int(job.get("updated_at") or 0), -int(job.get("id") or 0)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis when cut), on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def process_regions() -> list[ProcessRegion]:
    """Model calls by region and outcome, and their latency, from this process's Prometheus metrics."""
    outcomes: dict[str, dict[str, int]] = {}
    for metric in metrics.LLM_CALLS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                region = sample.labels["region"]
                outcomes.setdefault(region, {})[sample.labels["outcome"]] = int(sample.value)
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    for metric in metrics.LLM_LATENCY.collect():
        for sample in metric.samples:
            region = sample.labels.get("region", "")
            if sample.name.endswith("_bucket"):
                buckets.setdefault(region, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                sums[region] = sample.value
    rows = []
    for region in sorted(set(outcomes) | set(buckets)):
        cumulative = sorted(buckets.get(region, []))
        timed = int(cumulative[-1][1]) if cumulative else 0
        rows.append(ProcessRegion(
            region, outcomes.get(region, {}), timed, sums.get(region, 0.0) / timed if timed else 0.0,
            quantile_bound(cumulative, 0.5), quantile_bound(cumulative, 0.95)))
    return rows


def quantile_bound(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the histogram bucket that holds quantile ``q`` (cumulative ``(le, count)`` pairs)."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    wanted = q * cumulative[-1][1]
    return next(bound for bound, count in cumulative if count >= wanted)
