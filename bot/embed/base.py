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

    def close(self) -> None:
        """Release worker processes and connections."""
        ...


def clip_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` of at most ``max_bytes`` UTF-8 bytes.

    A byte bound is a token bound for every tokenizer that falls back to bytes (at most one token a byte),
    whatever the script; it is deterministic, so vectors cached by text stay valid.
    """
    if len(text) * 4 <= max_bytes:  # no character takes more than four bytes
        return text
    data = text[:max_bytes].encode("utf-8", "surrogatepass")
    return data[:max_bytes].decode("utf-8", "ignore") if len(data) > max_bytes else text[:max_bytes]
