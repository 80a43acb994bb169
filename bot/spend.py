"""Model spending per installation and calendar month (UTC), and the optional monthly budget.

``SpendLedger`` is the whole interface (``record_spend``, ``month_spend``), so a coordination backend can keep
the figures elsewhere (one DynamoDB item per installation and month, updated with an atomic ``ADD``); the
embedded default is a SQLite file beside the job queue, so the figures survive restarts.
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
