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


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a thread: the request, the code its answer gave and the functions it used."""

    request: str
    blocks: tuple[tuple[str, str], ...] = ()  # (language, code) of the answer's code blocks
    references: tuple[tuple[str, int, int, str], ...] = ()  # (path, start line, end line, qualified name)
    short: bool = False  # reduced to its request and references by the token budget


@dataclass(frozen=True)
class Focus:
    """The lines a pull-request review comment is on, as read from the pull request's head."""

    path: str
    start_line: int
    end_line: int
    lines: str
    before: str = ""  # up to a few lines of context on each side
    after: str = ""
    language: str = ""
    change: bool = False  # the request asks to change the lines: the answer starts with their replacement


@dataclass(frozen=True)
class Conversation:
    """What a request in a thread carries besides itself: earlier turns (oldest first) and the commented lines."""

    turns: tuple[Turn, ...] = ()
    dropped: int = 0  # older turns left out for the token budget
    focus: Focus | None = None


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

    def generate(self, request: str, hits: Sequence[Hit], lang: str, repo: Repository,
                 conversation: Conversation | None = None) -> Generation:
        """Answer ``request`` with code grounded in the retrieved functions of ``repo`` (and the thread's
        ``conversation``, when it is a follow-up or a review comment)."""
        ...

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens, latency and errors per region (or endpoint) since creation."""
        ...
