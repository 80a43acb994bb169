"""The interface every embedding backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Turns documents and queries into L2-normalized float32 vectors."""

    @property
    def name(self) -> str:
        """Stored with the index: a different name or dimension means re-embedding."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dimension) for documents."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Vector of shape (dimension,) for a search query."""
        ...
