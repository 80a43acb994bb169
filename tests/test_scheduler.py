"""RegionScheduler: least-loaded routing, AIMD limits, cool-downs, bounded attempts, bounded threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from bot.llm.scheduler import (
    RegionScheduler,
    Reply,
    RequestError,
    SchedulerError,
    ThrottledError,
    UnavailableError,
)


class FakeRegions:
    """Regions as a callable: per-region latency, a server-side concurrency limit and failure modes."""

    def __init__(self, latency: float = 0.005, limits: dict[str, int] | None = None,
                 down: set[str] = frozenset(), reject: set[str] = frozenset()) -> None:
        self.latency, self.limits, self.down, self.reject = latency, limits or {}, down, reject
        self.lock = threading.Lock()
        self.inflight: Counter[str] = Counter()
        self.max_inflight: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.ok: Counter[str] = Counter()
        self.calls_per_item: Counter[int] = Counter()
        self.threads = 0

    def __call__(self, region: str, item: int) -> Reply:
        with self.lock:
            self.calls[region] += 1
            self.calls_per_item[item] += 1
            self.threads = max(self.threads, threading.active_count())
            if region in self.down:
                raise UnavailableError("503 ServiceUnavailableException")
            if region in self.reject:
                raise RequestError("400 ValidationException")
            if self.inflight[region] >= self.limits.get(region, 1_000):
                raise ThrottledError("429 ThrottlingException")
            self.inflight[region] += 1
            self.max_inflight[region] = max(self.max_inflight[region], self.inflight[region])
        time.sleep(self.latency)
        with self.lock:
            self.inflight[region] -= 1
            self.ok[region] += 1
        return Reply(f"value-{item}", input_tokens=10, output_tokens=2)


def test_every_item_once_spread_over_least_loaded_regions() -> None:
    regions = FakeRegions()
    scheduler = RegionScheduler(["a", "b", "c"], concurrency=2, max_attempts=3)
    done: list[tuple[int, object]] = []
    results, failures = scheduler.map(list(range(60)), regions, lambda index, value: done.append((index, value)))
    assert results == {i: f"value-{i}" for i in range(60)}
    assert failures == {}
    assert sorted(done) == [(i, f"value-{i}") for i in range(60)], "each value handed over as it arrives"
    assert all(regions.max_inflight[r] <= 2 for r in "abc")
    assert all(regions.ok[r] >= 10 for r in "abc"), regions.ok
    usage = scheduler.usage()
    assert sum(u["calls"] for u in usage.values()) == 60
    assert usage["a"]["input_tokens"] == 10 * usage["a"]["calls"]
    assert usage["a"]["output_tokens"] == 2 * usage["a"]["calls"]


def test_concurrent_calls_go_to_the_least_loaded_region() -> None:
    barrier = threading.Barrier(3, timeout=5)
    placed: list[str] = []

    def call(region: str, item: int) -> Reply:
        placed.append(region)
        barrier.wait()  # all three are in flight at once
        return Reply(item)

    scheduler = RegionScheduler(["a", "b", "c"], concurrency=4, max_attempts=1)
    results, _ = scheduler.map([0, 1, 2], call)
    assert len(results) == 3
    assert sorted(placed) == ["a", "b", "c"]  # one each, not three on the first region with room


def test_throttle_cuts_the_limit_and_success_adds_back() -> None:
    answers = iter([ThrottledError("429"), None])

    def call(region: str, item: int) -> Reply:
        answer = next(answers)
        if answer is not None:
            raise answer
        return Reply(item)

    scheduler = RegionScheduler(["a"], concurrency=4, max_attempts=3, backoff=0.001)
    assert scheduler.call(lambda region: call(region, 7)) == 7
    assert scheduler.limits() == {"a": pytest.approx(2.8 + 1 / 2.8)}  # 4 cut by 30%, then +1/limit for the success
    assert scheduler.usage()["a"]["throttles"] == 1
    assert scheduler.usage()["a"]["calls"] == 2


def test_throttled_region_sheds_load_to_the_others() -> None:
    regions = FakeRegions(latency=0.01, limits={"a": 2})
    scheduler = RegionScheduler(["a", "b", "c"], concurrency=8, max_attempts=6, backoff=0.005)
    results, failures = scheduler.map(list(range(150)), regions)
    assert len(results) == 150 and not failures
    usage = scheduler.usage()
    assert usage["a"]["throttles"] > 0
    assert regions.ok["a"] < regions.ok["b"] and regions.ok["a"] < regions.ok["c"], regions.ok
    # AIMD keeps the throttled region near its real limit instead of hammering it
    assert usage["a"]["throttles"] < regions.ok["a"], usage["a"]


def test_unavailable_region_cools_down_and_calls_fail_over() -> None:
    regions = FakeRegions(down={"a"})
    scheduler = RegionScheduler(["a", "b"], concurrency=4, max_attempts=3, cooldown=30.0, backoff=0.001)
    results, failures = scheduler.map(list(range(40)), regions)
    assert len(results) == 40 and not failures
    assert regions.calls["a"] <= 4  # only calls already on their way when it failed; then it rests
    assert scheduler.usage()["a"]["errors"] == regions.calls["a"]
    assert regions.ok["b"] == 40


def test_region_is_probed_again_after_its_cool_down() -> None:
    regions = FakeRegions(down={"a"})
    scheduler = RegionScheduler(["a", "b"], concurrency=2, max_attempts=3, cooldown=0.05, backoff=0.001)
    scheduler.map(list(range(4)), regions)
    regions.down = set()
    time.sleep(0.1)
    results, _ = scheduler.map(list(range(40)), regions)
    assert len(results) == 40
    assert regions.ok["a"] > 0  # "a" serves again
    assert scheduler.limits()["a"] > 1.0  # and its limit grows back from the single probe


def test_failure_after_bounded_attempts_is_reported_per_item() -> None:
    regions = FakeRegions(down={"a", "b"})
    scheduler = RegionScheduler(["a", "b"], concurrency=2, max_attempts=3, cooldown=0.0, backoff=0.001)
    done: list[tuple[int, object]] = []
    results, failures = scheduler.map(list(range(5)), regions, lambda index, value: done.append((index, value)))
    assert results == {}
    assert sorted(failures) == list(range(5)) and sorted(done) == [(i, None) for i in range(5)]
    assert all("503 ServiceUnavailableException (after 3 attempts)" in text for text in failures.values())
    assert all(count == 3 for count in regions.calls_per_item.values())


def test_rejected_request_is_tried_once_per_region() -> None:
    regions = FakeRegions(reject={"a", "b"})
    scheduler = RegionScheduler(["a", "b"], concurrency=2, max_attempts=6, backoff=0.001)
    results, failures = scheduler.map([1, 2, 3], regions)
    assert results == {} and len(failures) == 3
    assert all(count == 2 for count in regions.calls_per_item.values())
    assert "400 ValidationException" in failures[0]


def test_unexpected_exception_is_retried_not_lost() -> None:
    seen: set[int] = set()

    def flaky(region: str, item: int) -> Reply:
        if item not in seen:
            seen.add(item)
            raise KeyError("output")
        return Reply(item)

    scheduler = RegionScheduler(["a", "b"], concurrency=2, max_attempts=3, backoff=0.001)
    results, failures = scheduler.map(list(range(6)), flaky)
    assert results == {i: i for i in range(6)} and not failures


def test_threads_are_bounded_by_capacity_not_items() -> None:
    regions = FakeRegions(latency=0.002)
    baseline = threading.active_count()
    scheduler = RegionScheduler(["a", "b"], concurrency=3, max_attempts=2)
    results, _ = scheduler.map(list(range(300)), regions)
    assert len(results) == 300
    assert regions.threads <= baseline + scheduler.capacity()


def test_single_call_raises_after_its_attempts() -> None:
    def timeout(region: str) -> Reply:
        raise UnavailableError("read timeout")

    scheduler = RegionScheduler(["a"], concurrency=1, max_attempts=2, cooldown=0.0, backoff=0.001)
    with pytest.raises(SchedulerError, match="a: read timeout \\(after 2 attempts\\)"):
        scheduler.call(timeout)
    assert scheduler.usage()["a"]["calls"] == 2
