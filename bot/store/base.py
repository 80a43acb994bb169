"""The interface every index store implements; each query is scoped to one repository and branch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from bot.documents import BranchState, Document, DocumentRef


class StoreError(RuntimeError):
    """The store cannot be reached or is not usable; the message says why."""


class Store(Protocol):
    """Documents, index state and the summary cache of every repository."""

    def branch_state(self, repo: str, branch: str) -> BranchState | None:
        """The indexed commit of ``repo``/``branch``, or None if it was never indexed."""
        ...

    def branch_states(self) -> list[BranchState]:
        """Every indexed repository branch."""
        ...

    def refs(self, repo: str, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        ...

    def pending(self, repo: str, branch: str) -> list[DocumentRef]:
        """Documents of the branch whose summary is still a fallback (``summary_ok`` False), to retry."""
        ...

    def documents(self, repo: str, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents (vectors included) of the branch with these ids, in that order, missing ones left out."""
        ...

    def write(self, repo: str, branch: str, upserts: Sequence[Document], deletes: Sequence[str]) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` (ids) in the branch; durable on return."""
        ...

    def set_state(self, repo: str, branch: str, commit: str, embedder: str, dimension: int) -> None:
        """Record ``commit`` as indexed; called last, after every write of a run."""
        ...

    def drop_branch(self, repo: str, branch: str) -> None:
        """Remove a branch's documents and state."""
        ...

    def cached_summaries(self, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the cache by key (model, language and content hash)."""
        ...

    def cache_summaries(self, entries: dict[str, str]) -> None:
        """Add summaries to the cache."""
        ...

    def cached_vectors(self, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the cache by embedder and text hash."""
        ...

    def cache_vectors(self, embedder: str, entries: dict[str, np.ndarray]) -> None:
        """Add embeddings to the cache."""
        ...

    def lexical_search(self, repo: str, branch: str, query: str, limit: int) -> list[tuple[str, float]]:
        """(document id, score) best first, by keyword relevance (Korean morphemes and identifiers)."""
        ...

    def vector_search(self, repo: str, branch: str, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """(document id, inner product) best first."""
        ...

    def sample_vectors(self, repo: str, branch: str, dimension: int, limit: int) -> np.ndarray:
        """Up to ``limit`` of the branch's vectors of ``dimension``, shape (n, dimension); the same sample every time."""
        ...

    def ping(self) -> bool:
        """True when the store answers."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...
