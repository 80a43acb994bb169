"""The operations ledger every process shares: model spending per installation and month (and the optional
monthly budget), recent index runs, figures per day and per region, and reply feedback.

``Ledger`` is the whole interface. The embedded default keeps it in one SQLite file beside the job queue
(``spend.sqlite3``), so the figures survive restarts and every process on the machine sees them; with
``RAGCODE_QUEUE=sqs`` it lives in the DynamoDB coordination table (``bot/spend_dynamodb.py``), where every
receiver and worker reads and adds to the same items (counters with atomic ``ADD``).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from bot.config import Settings
from bot.llm.usage import Figures, Meter

DAY = 86400
RUN_DAYS = 30  # finished runs are kept this long ...
MAX_RUNS = 5000  # ... and at most this many (the embedded ledger; DynamoDB items expire by TTL)
DAILY_DAYS = 120  # figures per day (and per region) are kept this long
SPEND_DAYS = 400  # monthly spending is kept this long
RUNNING_SECONDS = 86400  # a run that never reported its end (its worker was killed) stops showing after this
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")  # GitHub's reaction contents
OUTCOMES = ("running", "success", "failure", "error")
_TEXT_LIMITS = {"id": 64, "repo": 200, "branch": 255, "commit": 40, "outcome": 16, "trigger": 32}
MAX_REGION_CHARS = 64


@dataclass(frozen=True)
class RunSummary:
    """One index run, compact: ``outcome`` is ``running`` (started), ``success``, ``failure`` (functions
    failed to summarize) or ``error`` (the run stopped)."""

    id: str
    repo_id: int
    repo: str
    installation: int
    branch: str
    commit: str
    started_at: float
    outcome: str = "running"
    seconds: float = 0.0
    full: bool = False
    trigger: str = ""  # what queued it: push, installation, rerun, reconcile, command …
    functions_total: int = 0
    functions_added: int = 0
    functions_updated: int = 0
    functions_removed: int = 0
    summaries_generated: int = 0
    summaries_deferred: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """A summary from ``to_json``'s dict (unknown keys ignored, texts clipped, numbers checked)."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            if item.type == "str":
                value = str(value)[:_TEXT_LIMITS.get(item.name, 200)]
            elif item.type == "int":
                value = int(value)
            elif item.type == "float":
                value = float(value) if math.isfinite(float(value)) else 0.0
            elif item.type == "bool":
                value = bool(value)
            values[item.name] = value
        summary = cls(**values)
        if summary.outcome not in OUTCOMES:
            raise ValueError(f"run {summary.id}: outcome {summary.outcome!r} is not one of {', '.join(OUTCOMES)}")
        return summary


@dataclass(frozen=True)
class DayFigures:
    """What happened on one day (UTC): index runs, failed ones, model summaries and spending."""

    day: str  # YYYY-MM-DD
    runs: int = 0
    failed_runs: int = 0
    summaries: int = 0
    cost_usd: float = 0.0


class Ledger(Protocol):
    """Figures shared by every process of the service (receivers, workers, the command line)."""

    def record_spend(self, installation: int, usd: float) -> None:
        """Add ``usd`` to the installation's spending of the current month (and to today's)."""
        ...

    def month_spend(self, installation: int) -> float:
        """What the installation spent in the current month."""
        ...

    def month_spending(self) -> dict[int, float]:
        """Every installation's spending in the current month."""
        ...

    def record_usage(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add a meter's rows (``Meter.rows()``: calls, tokens, errors, throttles, seconds, cost by model and
        region) to today's figures per region."""
        ...

    def region_usage(self, days: int) -> dict[str, Figures]:
        """Model figures per region over the last ``days`` days (today included)."""
        ...

    def record_run(self, run: RunSummary) -> None:
        """Record a run: a ``running`` one shows as in progress until the same run is recorded again with its
        outcome (or a day passes); a finished one joins the recent runs and today's figures."""
        ...

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The last ``limit`` finished runs, newest first."""
        ...

    def running_runs(self) -> list[RunSummary]:
        """Runs started and not finished (one per repository and branch), newest first."""
        ...

    def daily(self, days: int) -> list[DayFigures]:
        """Figures of each of the last ``days`` days (today included), oldest first; days without any are zeros."""
        ...

    def record_feedback(self, repo_id: int, reaction: str, count: int) -> None:
        """Add ``count`` (negative: withdrawn) reactions ``reaction`` (GitHub's content: ``+1``, ``-1``, …) on
        the service's replies in the repository."""
        ...

    def feedback_totals(self) -> dict[str, int]:
        """Reactions on replies by content, over every repository."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def month_of(when: float | None = None) -> str:
    """The calendar month (UTC) of ``when`` (default: now), as ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(when))


def day_of(when: float | None = None) -> str:
    """The day (UTC) of ``when`` (default: now), as ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def last_days(days: int, now: float | None = None) -> list[str]:
    """The last ``days`` days (UTC) up to today, oldest first."""
    now = time.time() if now is None else now
    return [day_of(now - DAY * back) for back in range(max(days, 1) - 1, -1, -1)]


def check_reaction(reaction: str) -> str:
    """``reaction`` when it is one of GitHub's reaction contents; ValueError naming it otherwise."""
    if reaction not in REACTIONS:
        raise ValueError(f"record_feedback: reaction {reaction[:40]!r} is not one of {', '.join(REACTIONS)}")
    return reaction


def usage_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Figures]:
    """Meter rows summed per region (region names clipped; non-finite numbers dropped)."""
    regions: dict[str, Figures] = {}
    for row in rows:
        figures = regions.setdefault(str(row.get("region", ""))[:MAX_REGION_CHARS] or "-", Figures())
        for item in fields(Figures):
            value = row.get(item.name, 0) or 0
            if isinstance(value, int | float) and math.isfinite(value) and value > 0:
                setattr(figures, item.name, getattr(figures, item.name) + value)
    return regions


def record_meter(ledger: Ledger, installation: int, meter: Meter) -> None:
    """What a run or an answer used: its cost against the installation's budget, its calls per region."""
    ledger.record_spend(installation, meter.total("cost_usd"))
    ledger.record_usage(meter.rows())


class SqliteLedger:
    """``Ledger`` in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        for table in (
            "spend (installation INTEGER NOT NULL, month TEXT NOT NULL, usd REAL NOT NULL, "
            "PRIMARY KEY (installation, month))",
            "days (day TEXT PRIMARY KEY, runs INTEGER NOT NULL DEFAULT 0, failed_runs INTEGER NOT NULL DEFAULT 0, "
            "summaries INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0)",
            "usage (day TEXT NOT NULL, region TEXT NOT NULL, calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL, "
            "output_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, throttles INTEGER NOT NULL, "
            "seconds REAL NOT NULL, cost_usd REAL NOT NULL, PRIMARY KEY (day, region))",
            "runs (id TEXT PRIMARY KEY, started_at REAL NOT NULL, data TEXT NOT NULL)",
            "running (repo_id INTEGER NOT NULL, branch TEXT NOT NULL, id TEXT NOT NULL, started_at REAL NOT NULL, "
            "data TEXT NOT NULL, PRIMARY KEY (repo_id, branch))",
            "feedback (repo_id INTEGER NOT NULL, reaction TEXT NOT NULL, count INTEGER NOT NULL, "
            "PRIMARY KEY (repo_id, reaction))",
        ):
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        self._db.execute("CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)")

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def record_spend(self, installation: int, usd: float) -> None:
        """Add ``usd`` to this month's row and today's (nothing for zero, negative or non-finite amounts)."""
        if not math.isfinite(usd) or usd <= 0:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO spend (installation, month, usd) VALUES (?, ?, ?) ON CONFLICT "
                                 "(installation, month) DO UPDATE SET usd = usd + excluded.usd",
                                 (installation, month_of(), usd))
                self._db.execute("INSERT INTO days (day, cost_usd) VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET "
                                 "cost_usd = cost_usd + excluded.cost_usd", (day_of(), usd))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def month_spend(self, installation: int) -> float:
        """This month's spending of the installation."""
        rows = self._run("SELECT usd FROM spend WHERE installation = ? AND month = ?", (installation, month_of()))
        return float(rows[0][0]) if rows else 0.0

    def month_spending(self) -> dict[int, float]:
        """This month's spending of every installation that spent something."""
        rows = self._run("SELECT installation, usd FROM spend WHERE month = ? ORDER BY installation", (month_of(),))
        return {int(installation): float(usd) for installation, usd in rows}

    def record_usage(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add the rows to today's figures per region."""
        today = day_of()
        for region, f in usage_rows(rows).items():
            self._run(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, region) DO UPDATE SET "
                "calls = calls + excluded.calls, input_tokens = input_tokens + excluded.input_tokens, "
                "output_tokens = output_tokens + excluded.output_tokens, errors = errors + excluded.errors, "
                "throttles = throttles + excluded.throttles, seconds = seconds + excluded.seconds, "
                "cost_usd = cost_usd + excluded.cost_usd",
                (today, region, f.calls, f.input_tokens, f.output_tokens, f.errors, f.throttles, f.seconds,
                 f.cost_usd))

    def region_usage(self, days: int) -> dict[str, Figures]:
        """Figures per region since the first of the last ``days`` days."""
        rows = self._run("SELECT region, SUM(calls), SUM(input_tokens), SUM(output_tokens), SUM(errors), "
                         "SUM(throttles), SUM(seconds), SUM(cost_usd) FROM usage WHERE day >= ? GROUP BY region "
                         "ORDER BY region", (last_days(days)[0],))
        return {str(r[0]): Figures(int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6]), float(r[7]))
                for r in rows}

    def record_run(self, run: RunSummary) -> None:
        """A running run replaces the branch's marker; a finished one removes it and is kept with the day's
        figures (recording the same finished run twice counts it once)."""
        data = json.dumps(run.to_json(), ensure_ascii=False)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if run.outcome == "running":
                    self._db.execute("INSERT OR REPLACE INTO running VALUES (?, ?, ?, ?, ?)",
                                     (run.repo_id, run.branch, run.id, run.started_at, data))
                else:
                    self._db.execute("DELETE FROM running WHERE repo_id = ? AND branch = ? AND id = ?",
                                     (run.repo_id, run.branch, run.id))
                    new = self._db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?)",
                                           (run.id, run.started_at, data)).rowcount
                    if new:
                        self._db.execute(
                            "INSERT INTO days (day, runs, failed_runs, summaries) VALUES (?, 1, ?, ?) ON CONFLICT "
                            "(day) DO UPDATE SET runs = runs + 1, failed_runs = failed_runs + excluded.failed_runs, "
                            "summaries = summaries + excluded.summaries",
                            (day_of(), int(run.outcome != "success"), run.summaries_generated))
                    self._prune()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _prune(self) -> None:
        now = time.time()
        self._db.execute("DELETE FROM runs WHERE started_at < ? OR id IN (SELECT id FROM runs ORDER BY started_at "
                         "DESC LIMIT -1 OFFSET ?)", (now - RUN_DAYS * DAY, MAX_RUNS))
        self._db.execute("DELETE FROM running WHERE started_at < ?", (now - RUNNING_SECONDS,))
        self._db.execute("DELETE FROM days WHERE day < ?", (day_of(now - DAILY_DAYS * DAY),))
        self._db.execute("DELETE FROM usage WHERE day < ?", (day_of(now - DAILY_DAYS * DAY),))

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The newest finished runs."""
        rows = self._run("SELECT data FROM runs ORDER BY started_at DESC, id LIMIT ?", (max(limit, 0),))
        return [RunSummary.from_json(json.loads(row[0])) for row in rows]

    def running_runs(self) -> list[RunSummary]:
        """Runs in progress that started within the last day."""
        rows = self._run("SELECT data FROM running WHERE started_at >= ? ORDER BY started_at DESC",
                         (time.time() - RUNNING_SECONDS,))
        return [RunSummary.from_json(json.loads(row[0])) for row in rows]

    def daily(self, days: int) -> list[DayFigures]:
        """Each of the last ``days`` days, oldest first."""
        wanted = last_days(days)
        rows = self._run("SELECT day, runs, failed_runs, summaries, cost_usd FROM days WHERE day >= ?", (wanted[0],))
        found = {str(r[0]): DayFigures(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows}
        return [found.get(day, DayFigures(day)) for day in wanted]

    def record_feedback(self, repo_id: int, reaction: str, count: int) -> None:
        """Add ``count`` reactions of one kind on the repository's replies."""
        self._run("INSERT INTO feedback VALUES (?, ?, ?) ON CONFLICT (repo_id, reaction) DO UPDATE SET "
                  "count = count + excluded.count", (int(repo_id), check_reaction(reaction), int(count)))

    def feedback_totals(self) -> dict[str, int]:
        """Reactions by content over every repository (kinds never recorded left out)."""
        rows = self._run("SELECT reaction, SUM(count) FROM feedback GROUP BY reaction")
        return {str(reaction): int(total) for reaction, total in rows}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def make_ledger(settings: Settings) -> Ledger:
    """The ledger of the queue's backend: the DynamoDB table with ``RAGCODE_QUEUE=sqs``, else ``spend.sqlite3``
    in the data folder, beside the job queue."""
    if settings.queue == "sqs":
        from bot.spend_dynamodb import DynamoLedger

        return DynamoLedger(settings)
    return SqliteLedger(settings.home / "spend.sqlite3")


@dataclass(frozen=True)
class Budget:
    """An installation's monthly budget and what it spent of it this month."""

    limit_usd: float
    spent_usd: float

    @property
    def left_usd(self) -> float:
        """What may still be spent this month (0 when over)."""
        return max(0.0, self.limit_usd - self.spent_usd)

    @property
    def exhausted(self) -> bool:
        """True once the month's spending reached the limit."""
        return self.spent_usd >= self.limit_usd


def monthly_budget(settings: Settings, ledger: Ledger, installation: int) -> Budget | None:
    """The installation's budget this month; None without ``RAGCODE_MONTHLY_BUDGET_USD`` or an installation."""
    if settings.monthly_budget_usd <= 0 or not installation:
        return None
    return Budget(settings.monthly_budget_usd, ledger.month_spend(installation))
