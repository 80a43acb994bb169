"""Model spending per installation and calendar month (UTC), the optional monthly budget, and reply feedback.

``SpendLedger`` is the whole interface (``record_spend``, ``month_spend``, ``record_feedback``,
``feedback_totals``), so a coordination backend can keep the figures elsewhere (one DynamoDB item per
installation and month, updated with an atomic ``ADD``); the embedded default is a SQLite file beside the job
queue, so the figures survive restarts.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.config import Settings


class SpendLedger(Protocol):
    """USD spent on models, per installation and month."""

    def record_spend(self, installation: int, usd: float) -> None:
        """Add ``usd`` to the installation's spending of the current month."""
        ...

    def month_spend(self, installation: int) -> float:
        """What the installation spent in the current month."""
        ...

    def record_feedback(self, repo_id: int, reaction: str, count: int) -> None:
        """Add ``count`` reactions of one kind (``+1``, ``-1``, …) given to the repository's replies."""
        ...

    def feedback_totals(self) -> dict[str, int]:
        """Reactions to replies counted so far, by reaction, over every repository."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def month_of(when: float | None = None) -> str:
    """The calendar month (UTC) of ``when`` (default: now), as ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(when))


class SqliteSpendLedger:
    """``SpendLedger`` in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("CREATE TABLE IF NOT EXISTS spend (installation INTEGER NOT NULL, month TEXT NOT NULL, "
                         "usd REAL NOT NULL, PRIMARY KEY (installation, month))")
        self._db.execute("CREATE TABLE IF NOT EXISTS feedback (repo_id INTEGER NOT NULL, reaction TEXT NOT NULL, "
                         "count INTEGER NOT NULL, PRIMARY KEY (repo_id, reaction))")

    def record_spend(self, installation: int, usd: float) -> None:
        """Add ``usd`` to this month's row (nothing for zero, negative or non-finite amounts)."""
        if not math.isfinite(usd) or usd <= 0:
            return
        with self._lock:
            self._db.execute("INSERT INTO spend (installation, month, usd) VALUES (?, ?, ?) ON CONFLICT "
                             "(installation, month) DO UPDATE SET usd = usd + excluded.usd",
                             (installation, month_of(), usd))

    def month_spend(self, installation: int) -> float:
        """This month's spending of the installation."""
        with self._lock:
            row = self._db.execute("SELECT usd FROM spend WHERE installation = ? AND month = ?",
                                   (installation, month_of())).fetchone()
        return float(row[0]) if row else 0.0

    def record_feedback(self, repo_id: int, reaction: str, count: int) -> None:
        """Add ``count`` to the repository's row for ``reaction`` (nothing for a count below 1)."""
        if count < 1:
            return
        with self._lock:
            self._db.execute("INSERT INTO feedback (repo_id, reaction, count) VALUES (?, ?, ?) ON CONFLICT "
                             "(repo_id, reaction) DO UPDATE SET count = count + excluded.count",
                             (repo_id, reaction, count))

    def feedback_totals(self) -> dict[str, int]:
        """Reactions counted so far, by reaction."""
        with self._lock:
            rows = self._db.execute("SELECT reaction, SUM(count) FROM feedback GROUP BY reaction").fetchall()
        return {str(reaction): int(total) for reaction, total in rows}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def make_ledger(settings: Settings) -> SpendLedger:
    """The ledger of the embedded default: ``spend.sqlite3`` in the data folder, beside the job queue."""
    return SqliteSpendLedger(settings.home / "spend.sqlite3")


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


def monthly_budget(settings: Settings, ledger: SpendLedger, installation: int) -> Budget | None:
    """The installation's budget this month; None without ``RAGCODE_MONTHLY_BUDGET_USD`` or an installation."""
    if settings.monthly_budget_usd <= 0 or not installation:
        return None
    return Budget(settings.monthly_budget_usd, ledger.month_spend(installation))
