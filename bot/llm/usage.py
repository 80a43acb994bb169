"""Metering of model calls: what one index run or one answer used, by model and region, whatever else runs.

``with metering() as meter:`` collects every call that schedulers start from this thread (or task) inside the
block, also those their pool threads make: a scheduler takes the active meters when a batch of calls starts.
Runs of other repositories in other worker threads are never counted in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Figures:
    """Calls (failed ones included), tokens, failures, seconds and USD of one model in one region."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    throttles: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0


class Meter:
    """Figures by (model, region); safe to update from many threads."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Figures] = {}
        self._lock = threading.Lock()

    def record(self, model: str, region: str, outcome: str, input_tokens: int, output_tokens: int,
               seconds: float, cost_usd: float) -> None:
        """Count one call and its outcome (``ok``, ``throttled``, ``unavailable`` or ``error``)."""
        with self._lock:
            row = self._rows.setdefault((model, region), Figures())
            row.calls += 1
            row.input_tokens += input_tokens
            row.output_tokens += output_tokens
            row.errors += outcome in ("unavailable", "error")
            row.throttles += outcome == "throttled"
            row.seconds += seconds
            row.cost_usd += cost_usd

    def rows(self) -> list[dict[str, Any]]:
        """``[{model, region, calls, input_tokens, output_tokens, errors, throttles, seconds, cost_usd}]``."""
        with self._lock:
            items = sorted(self._rows.items())
        return [{"model": model, "region": region,
                 **{key: round(value, 6) if isinstance(value, float) else value
                    for key, value in asdict(figures).items()}}
                for (model, region), figures in items]

    def by_region(self, model: str) -> dict[str, dict[str, float]]:
        """One model's figures per region, without the cost (the shape of ``TextModel.usage``)."""
        return {row["region"]: {key: value for key, value in row.items()
                                if key not in ("model", "region", "cost_usd")}
                for row in self.rows() if row["model"] == model}

    def total(self, key: str) -> float:
        """One figure summed over every model and region."""
        with self._lock:
            return float(sum(getattr(figures, key) for figures in self._rows.values()))


_ACTIVE: ContextVar[tuple[Meter, ...]] = ContextVar("ragcode_meters", default=())


@contextmanager
def metering() -> Iterator[Meter]:
    """A meter that counts the calls started inside the block (nested meters each count them)."""
    meter = Meter()
    token = _ACTIVE.set((*_ACTIVE.get(), meter))
    try:
        yield meter
    finally:
        _ACTIVE.reset(token)


def active_meters() -> tuple[Meter, ...]:
    """The meters of the enclosing ``metering()`` blocks."""
    return _ACTIVE.get()
