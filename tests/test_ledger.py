"""The operations ledger: one contract, kept by the SQLite file of one machine and by the DynamoDB table of the
SQS deployment (moto's server); every process that opens the same file or table sees the same figures."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.spend import (
    DAY,
    RUN_DAYS,
    Ledger,
    RunSummary,
    SqliteLedger,
    day_of,
    last_days,
    make_ledger,
    month_of,
)
from bot.spend_dynamodb import DynamoLedger
from tests.aws_standin import Stack, clients, create_stack

OpenLedger = Callable[[], Ledger]


def dynamo_settings(stack: Stack) -> Settings:
    return Settings(store="opensearch", opensearch_url="http://127.0.0.1:9", queue="sqs",
                    sqs_queue_url=stack.queue_url, dynamodb_table=stack.table)


@pytest.fixture(params=["sqlite", "dynamodb"])
def open_ledger(request, tmp_path: Path) -> Iterator[OpenLedger]:
    """Opens ledgers of one backend that share their storage, as several processes would."""
    opened: list[Ledger] = []
    if request.param == "sqlite":
        def make() -> Ledger:
            opened.append(SqliteLedger(tmp_path / "spend.sqlite3"))
            return opened[-1]
    else:
        request.getfixturevalue("aws_env")
        settings = dynamo_settings(create_stack(request.getfixturevalue("moto_server")))

        def make() -> Ledger:
            opened.append(make_ledger(settings))
            return opened[-1]
    yield make
    for ledger in opened:
        ledger.close()


def run(number: int, **changes: object) -> RunSummary:
    values: dict[str, object] = dict(repo_id=100 + number % 3, repo=f"acme/r{number % 3}", installation=7,
                                     branch="main", commit=f"{number:040x}", started_at=time.time() - 1000 + number)
    return RunSummary(f"{number}-1", **(values | changes))  # type: ignore[arg-type]


def test_spending_is_counted_per_installation_and_month_by_every_process(open_ledger: OpenLedger) -> None:
    first, second = open_ledger(), open_ledger()
    first.record_spend(31, 0.25)
    second.record_spend(31, 0.5)
    first.record_spend(32, 2.0)
    for bad in (-1.0, math.nan, math.inf, 0.0):
        second.record_spend(31, bad)
    assert second.month_spend(31) == pytest.approx(0.75) and first.month_spend(32) == pytest.approx(2.0)
    assert first.month_spend(33) == 0.0
    assert second.month_spending() == {31: pytest.approx(0.75), 32: pytest.approx(2.0)}
    assert first.daily(3)[-1].cost_usd == pytest.approx(2.75), "today's spending, every installation"


def test_concurrent_additions_are_all_counted(open_ledger: OpenLedger) -> None:
    ledgers = [open_ledger(), open_ledger()]

    def spend(ledger: Ledger) -> None:
        for _ in range(20):
            ledger.record_spend(5, 0.01)
            ledger.record_feedback(9, "+1", 1)

    threads = [threading.Thread(target=spend, args=(ledgers[n % 2],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledgers[0].month_spend(5) == pytest.approx(0.8)
    assert ledgers[1].feedback_totals() == {"+1": 80}


def test_a_run_shows_as_running_until_it_is_recorded_with_its_outcome(open_ledger: OpenLedger) -> None:
    worker, page = open_ledger(), open_ledger()
    started = run(1)
    worker.record_run(started)
    assert page.running_runs() == [started] and page.recent_runs(10) == []
    done = replace(started, outcome="success", seconds=12.5, functions_added=3, summaries_generated=3,
                   input_tokens=900, output_tokens=210, cost_usd=0.0123)
    worker.record_run(done)
    worker.record_run(done)  # recorded twice (a retried write): counted once
    assert page.running_runs() == [] and page.recent_runs(10) == [done]
    today = page.daily(1)[-1]
    assert (today.day, today.runs, today.failed_runs, today.summaries) == (day_of(), 1, 0, 3)


def test_a_newer_run_of_the_branch_keeps_its_marker_when_an_older_one_ends(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    old, new = run(1, repo_id=5), run(2, repo_id=5)
    ledger.record_run(old)
    ledger.record_run(new)  # the job was retried on another worker: the branch has one run in progress
    assert ledger.running_runs() == [new]
    ledger.record_run(replace(old, outcome="error"))
    assert ledger.running_runs() == [new], "the old attempt's end does not end the new one"
    ledger.record_run(replace(new, outcome="failure", failures=2))
    assert ledger.running_runs() == []
    assert [(r.id, r.outcome) for r in ledger.recent_runs(5)] == [("2-1", "failure"), ("1-1", "error")]
    assert (ledger.daily(1)[-1].runs, ledger.daily(1)[-1].failed_runs) == (2, 2)


def test_recent_runs_are_the_newest_first_and_limited(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    for number in range(12):
        ledger.record_run(run(number, outcome="success"))
    assert [r.id for r in ledger.recent_runs(5)] == [f"{n}-1" for n in (11, 10, 9, 8, 7)]
    assert len(ledger.recent_runs(50)) == 12 and ledger.recent_runs(0) == []


def test_usage_is_summed_per_region_over_the_days_asked(open_ledger: OpenLedger) -> None:
    ledger, other = open_ledger(), open_ledger()
    row = {"model": "m", "region": "us-east-1", "calls": 10, "input_tokens": 1000, "output_tokens": 200,
           "errors": 1, "throttles": 2, "seconds": 4.5, "cost_usd": 0.01}
    ledger.record_usage([row, {**row, "model": "embed", "calls": 2, "seconds": 0.5, "errors": 0, "throttles": 0}])
    other.record_usage([{**row, "region": "eu-central-1", "seconds": math.nan, "cost_usd": -3.0},
                        {**row, "region": "x" * 500}])
    usage = other.region_usage(7)
    east = usage["us-east-1"]
    assert (east.calls, east.errors, east.throttles, east.input_tokens) == (12, 1, 2, 2000)
    assert east.seconds == pytest.approx(5.0) and east.cost_usd == pytest.approx(0.02)
    central = usage["eu-central-1"]
    assert central.calls == 10 and central.seconds == 0.0 and central.cost_usd == 0.0, "bad numbers are dropped"
    assert "x" * 64 in usage and all(len(region) <= 64 for region in usage), "region names are clipped"


def test_daily_figures_cover_every_day_asked_oldest_first(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    ledger.record_spend(1, 0.5)
    days = ledger.daily(14)
    assert [d.day for d in days] == last_days(14) and days[-1].day == day_of()
    assert [d.cost_usd for d in days[:-1]] == [0.0] * 13 and days[-1].cost_usd == pytest.approx(0.5)


def test_feedback_is_added_per_repository_and_totalled(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    ledger.record_feedback(1, "+1", 3)
    ledger.record_feedback(2, "+1", 2)
    ledger.record_feedback(2, "-1", 1)
    ledger.record_feedback(1, "+1", -1)  # a reaction withdrawn
    ledger.record_feedback(1, "rocket", 1)
    assert ledger.feedback_totals() == {"+1": 4, "-1": 1, "rocket": 1}
    for hostile in ("<script>", "+1 ", "", "thumbsup" * 100):
        with pytest.raises(ValueError, match="record_feedback: reaction"):
            ledger.record_feedback(1, hostile, 1)
    assert ledger.feedback_totals() == {"+1": 4, "-1": 1, "rocket": 1}


def test_a_run_summary_from_elsewhere_is_bounded() -> None:
    hostile = run(1).to_json() | {"repo": "r" * 5000, "branch": "b" * 5000, "id": "i" * 500, "extra": "ignored",
                                   "cost_usd": "nan", "seconds": "inf"}
    summary = RunSummary.from_json(hostile)
    assert len(summary.repo) == 200 and len(summary.branch) == 255 and len(summary.id) == 64
    assert summary.cost_usd == 0.0 and summary.seconds == 0.0
    with pytest.raises(ValueError, match="outcome 'exploded'"):
        RunSummary.from_json(run(1).to_json() | {"outcome": "exploded"})


def test_sqlite_keeps_runs_for_a_bounded_time_and_the_old_spend_table(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "spend.sqlite3")
    ledger.record_run(run(1, outcome="success", started_at=time.time() - (RUN_DAYS + 1) * DAY))
    ledger.record_run(run(2, outcome="success"))
    assert [r.id for r in ledger.recent_runs(10)] == ["2-1"], "runs older than RUN_DAYS are pruned"
    ledger.close()
    with sqlite3.connect(tmp_path / "spend.sqlite3") as db:  # the spend table kept its shape (budgets survive)
        db.execute("INSERT INTO spend VALUES (31, ?, 1.5)", (month_of(),))
    assert SqliteLedger(tmp_path / "spend.sqlite3").month_spend(31) == 1.5


def test_dynamodb_items_expire_by_the_tables_ttl(moto_server, aws_env) -> None:
    stack = create_stack(moto_server)
    ledger = make_ledger(dynamo_settings(stack))
    assert isinstance(ledger, DynamoLedger)
    ledger.record_spend(3, 0.1)
    ledger.record_usage([{"region": "us-west-2", "calls": 1, "seconds": 0.2}])
    ledger.record_run(run(1))
    ledger.record_run(run(2, outcome="success"))
    ledger.close()
    _, dynamodb = clients(moto_server)
    items = dynamodb.scan(TableName=stack.table)["Items"]
    assert {item["pk"]["S"] for item in items} == {f"spend#{month_of()}", "day", "usage", "running", "run"}
    now = time.time()
    for item in items:
        assert now < int(item["expires_at"]["N"]) <= now + 400 * DAY, item
