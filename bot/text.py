"""Text analysis shared by the lexical index and the offline summarizer: identifiers and Korean morphemes."""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|\b|_|$)|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_ASCII_RUN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# Content morphemes kept for search: nouns, verb and adjective roots, foreign words, numbers, roots.
_CONTENT_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "XR", "SL", "SH", "SN", "MAG"})
_STOPWORDS = frozenset(
    "a an the of to in on for and or is are be by with from as at it this that its into via self cls "
    "def return none true false null new var let const function func fn pub static void int str".split()
)

log = logging.getLogger(__name__)

_kiwi_lock = threading.Lock()
_kiwi: Kiwi | None = None
_analyzer: _AnalyzerProcess | None = None  # Kiwi in a process of its own (``analyzer_process``)


def split_identifier(identifier: str) -> list[str]:
    """``validateUserToken`` / ``validate_user_token`` -> ``['validate', 'user', 'token']``."""
    return [part.lower() for chunk in identifier.split("_") for part in _CAMEL_PART.findall(chunk)]


def identifier_terms(text: str) -> list[str]:
    """Lower-case terms for every identifier in ``text``: the whole identifier and its parts."""
    terms: list[str] = []
    for identifier in IDENTIFIER.findall(text):
        parts = split_identifier(identifier)
        whole = identifier.lower()
        if len(parts) > 1 or whole not in parts:
            terms.append(whole)
        terms.extend(part for part in parts if part not in _STOPWORDS)
    return [term for term in terms if len(term) > 1 and term not in _STOPWORDS]


def words_of_identifier(identifier: str) -> str:
    """Human-readable words of an identifier: ``parse_http_header`` -> ``parse http header``."""
    return " ".join(split_identifier(identifier))


def kiwi() -> Kiwi:
    """The process-wide Kiwi analyzer, fully loaded (it takes seconds, so it is made once)."""
    global _kiwi
    with _kiwi_lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            # Without the typo and multi-word dictionaries it loads in about half the time (it holds the interpreter
            # while it loads, stalling every other thread); the tokens of ordinary text are the same.
            analyzer = Kiwi(load_typo_dict=False, load_multi_dict=False)
            # Kiwi builds its model inside the first tokenize, not in the constructor: do it here, so
            # a warm-up really loads it and the first Korean query is not the one that pays.
            analyzer.tokenize("한국어")
            _kiwi = analyzer
        return _kiwi


def has_hangul(text: str) -> bool:
    """True when ``text`` contains Hangul syllables or letters."""
    return any("\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e" for ch in text)


@lru_cache(maxsize=4096)
def _korean_terms(text: str) -> tuple[str, ...]:
    spans = [(m.start(), m.end(), "SL") for m in _ASCII_RUN.finditer(text)]
    terms: list[str] = []
    for token in kiwi().tokenize(text, pretokenized=spans):
        if token.tag not in _CONTENT_TAGS:
            continue
        if token.tag == "SL":
            terms.extend(identifier_terms(token.form))
        elif len(token.form) > 1 or token.tag in ("VV", "VA", "XR", "NNG", "NNP"):
            terms.append(token.form.lower())
    return tuple(terms)


def analyze(text: str) -> list[str]:
    """Search terms of free text: Korean content morphemes (Kiwi) plus identifier parts."""
    if has_hangul(text):
        return list(_korean_terms(text))
    return identifier_terms(text)


def analyze_many(texts: Sequence[str]) -> list[list[str]]:
    """``analyze`` of every text; the Korean ones go to the analyzer process when one runs."""
    process = _analyzer
    korean = [index for index, text in enumerate(texts) if has_hangul(text)]
    if process is None or not korean:
        return [analyze(text) for text in texts]
    found = dict(zip(korean, process.analyze([texts[index] for index in korean]), strict=True))
    return [found[index] if index in found else identifier_terms(text) for index, text in enumerate(texts)]


class _AnalyzerProcess:
    """Kiwi in a child process of its own, fed batches of Korean texts through a pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve_analysis, args=(theirs,), name="ragcode-analyzer", daemon=True)
        self._process.start()
        theirs.close()
        self._lock = threading.Lock()
        self._broken = False

    def analyze(self, texts: list[str]) -> list[list[str]]:
        """The terms of each Korean text; here, losing nothing, if the process has died (killed, out of memory)."""
        with self._lock:
            if not self._broken:
                try:
                    self._connection.send(texts)
                    found: list[list[str]] = self._connection.recv()
                    return found
                except (EOFError, OSError):
                    self._broken = True
                    self._process.join(timeout=1)  # for its exit code
                    log.warning("the Korean analyzer process stopped (exit code %s); analyzing in this process",
                                self._process.exitcode)
        return [list(_korean_terms(text)) for text in texts]

    def stop(self) -> None:
        """End the process, also while Kiwi is still loading (a run with nothing to write need not wait for it)."""
        self._process.terminate()
        self._process.join()
        self._connection.close()


def _serve_analysis(connection: Connection) -> None:
    """The analyzer process: load Kiwi, then answer each batch of texts with their terms until the pipe closes."""
    kiwi()
    while True:
        try:
            texts = connection.recv()
        except EOFError:
            return
        connection.send([list(_korean_terms(text)) for text in texts])


@contextmanager
def analyzer_process() -> Iterator[None]:
    """Within the block, Kiwi loads and analyzes in a process of its own, for ``analyze_many``.

    For a process that writes an index and answers nothing (``ragcode index``): Kiwi holds the interpreter for about
    a second while it loads and for every text it analyzes, which here would stall the run's other threads (the
    model calls in flight); in its own process, on another core, it costs them nothing. Where Kiwi is loaded already
    (a warmed-up server) the block changes nothing.
    """
    global _analyzer
    process = None
    with _kiwi_lock:
        if _analyzer is None and _kiwi is None:
            process = _analyzer = _AnalyzerProcess()
    try:
        yield
    finally:
        if process is not None:
            with _kiwi_lock:
                _analyzer = None
            process.stop()
