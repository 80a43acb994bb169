"""The interface every text backend (summaries and answers) implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.documents import Hit, Repository, Unit


@dataclass
class SummaryResult:
    """Summaries by unit content hash; hashes that could not be summarized map to the last error."""

    summaries: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Generation:
    """A generated answer: Markdown text (prose and fenced code) and the backend that wrote it."""

    markdown: str
    llm: str
    generated: bool = True  # False when the backend only retrieves (offline)


class TextModel(Protocol):
    """Summarizes units and writes code from retrieved functions."""

    @property
    def name(self) -> str:
        """Part of the summary cache key: a different model never reuses another's summaries."""
        ...

    @property
    def instant(self) -> bool:
        """True when summaries cost no model call (made inline, never worth waiting for)."""
        ...

    def summarize(
        self, units: Sequence[Unit], lang: str, progress: Callable[[int], None] | None = None,
        on_summary: Callable[[str, str], None] | None = None,
    ) -> SummaryResult:
        """Summarize each unit (deduplicated by content hash); ``progress(n)`` after each n done and
        ``on_summary(hash, summary)`` as each summary is made (from any thread)."""
        ...

    def generate(self, request: str, hits: Sequence[Hit], lang: str, repo: Repository) -> Generation:
        """Answer ``request`` with code grounded in the retrieved functions of ``repo``."""
        ...

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens, latency and errors per region (or endpoint) since creation."""
        ...
