"""The interface every index store implements.

Every read and write is scoped in the store's own query to one repository (by its numeric id) and, for
documents, one branch: no caller ever filters another tenant's rows out in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from bot.documents import BranchState, Document, DocumentRef, Overlay, Repository

MAX_LOOKUP = 200  # documents one name or caller lookup returns at most


def name_matches(name: str, wanted: str) -> bool:
    """True when the qualified ``name`` (``Ledger.record#2``) is ``wanted`` or ends with it by whole components."""
    base = name.split("#", 1)[0]
    return base == wanted or base.endswith("." + wanted)


class StoreError(RuntimeError):
    """The store cannot be reached or is not usable; the message says why."""


class Store(Protocol):
    """Documents, index state and the per-repository summary and vector caches."""

    def branch_state(self, repo_id: int, branch: str) -> BranchState | None:
        """The indexed commit of the repository's branch, or None if it was never indexed."""
        ...

    def branch_states(self, repo_id: int) -> list[BranchState]:
        """Every indexed branch of one repository."""
        ...

    def repository_ids(self, name: str) -> list[int]:
        """Ids of the indexed repositories last known under ``name`` (owner/name), most recently indexed first."""
        ...

    def all_branch_states(self) -> Iterator[BranchState]:
        """Every indexed branch of every repository, page by page (for operators: ``ragcode status``)."""
        ...

    def refs(self, repo_id: int, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        ...

    def pending(self, repo_id: int, branch: str) -> list[DocumentRef]:
        """Documents of the branch whose summary is still a fallback (``summary_ok`` False), to retry."""
        ...

    def documents(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents (vectors included) of the branch with these ids, in that order, missing ones left out."""
        ...

    def write(self, repo_id: int, branch: str, upserts: Sequence[Document], deletes: Sequence[str], *,
              dimension: int | None = None) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` (ids) in the branch; durable on return.

        ``dimension`` is that of the embedder whose vectors the documents will get (for documents written before
        their vectors).
        """
        ...

    def without_vectors(self, repo_id: int, branch: str, limit: int) -> list[tuple[str, str, str]]:
        """(id, qualified name, summary) of up to ``limit`` documents of the branch that have no vector yet."""
        ...

    def set_vectors(self, repo_id: int, branch: str, vectors: dict[str, np.ndarray]) -> None:
        """Give documents of the branch (by id) their vectors; the rest of each document is unchanged."""
        ...

    def set_state(self, repo: Repository, branch: str, commit: str, embedder: str, dimension: int, *,
                  complete: bool = True) -> None:
        """Record ``commit`` as indexed (with the repository's name and installation).

        A run records its commit with ``complete`` False once every document is written (searchable by keyword),
        and again with ``complete`` True once every vector and model summary is in.
        """
        ...

    def rename_repository(self, repo_id: int, name: str) -> None:
        """Record the repository's new name (a ``repository.renamed`` event); its index stays."""
        ...

    def drop_branch(self, repo_id: int, branch: str) -> None:
        """Remove a branch's documents and state (and its overlay record, for a pull request's scope)."""
        ...

    def forget_repository(self, repo_id: int) -> None:
        """Remove everything of a repository: documents of every branch (recorded or not), state, overlays and
        caches."""
        ...

    def cached_summaries(self, repo_id: int, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the repository's cache by key (model, language and content hash)."""
        ...

    def cache_summaries(self, repo_id: int, entries: dict[str, str]) -> None:
        """Add summaries to the repository's cache."""
        ...

    def cached_vectors(self, repo_id: int, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the repository's cache by embedder and text hash."""
        ...

    def cache_vectors(self, repo_id: int, embedder: str, entries: dict[str, np.ndarray]) -> None:
        """Add embeddings to the repository's cache."""
        ...

    def find_names(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents of the branch named one of ``names``: by qualified name (``Ledger.record``) or by its last
        components (``record`` finds ``Ledger.record``); the parts of a long function (``name#2``) count as it."""
        ...

    def find_paths(self, repo_id: int, branch: str, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that name a file of the branch: exactly, or by its last components (``x/y.py`` and
        ``y.py`` both name ``src/x/y.py``)."""
        ...

    def callers(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents of the branch that call one of ``names`` (their recorded ``calls``)."""
        ...

    def set_overlay(self, overlay: Overlay) -> None:
        """Record a pull request overlay (its base, head and shadowed paths); its documents are written as a branch."""
        ...

    def overlay(self, repo_id: int, branch: str) -> Overlay | None:
        """The overlay recorded for the scope ``branch`` (``overlay_branch(number)``), or None."""
        ...

    def lexical_search(self, repo_id: int, branch: str, query: str, limit: int) -> list[tuple[str, float]]:
        """(document id, score) best first, by keyword relevance (Korean morphemes and identifiers)."""
        ...

    def vector_search(self, repo_id: int, branch: str, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """(document id, inner product) best first."""
        ...

    def sample_vectors(self, repo_id: int, branch: str, dimension: int, limit: int) -> np.ndarray:
        """Up to ``limit`` of the branch's vectors of ``dimension``, shape (n, dimension); the same sample every time."""
        ...

    def ping(self) -> bool:
        """True when the store answers."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...
