"""What a question is answered from: one branch's index, or a pull request's overlay over its base branch.

A pull request's view is the base branch without the paths the pull request changed, renamed or deleted, plus the
overlay (those files at the pull request's head). Lookups by name, path or call go through every part of the view
and leave out what it hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.documents import Document, DocumentRef, Overlay
from bot.store.base import MAX_LOOKUP, Store


@dataclass(frozen=True)
class View:
    """One scope of the store and the paths of it that are not shown."""

    branch: str
    hidden: frozenset[str] = frozenset()


def views_of(branch: str, overlay: Overlay | None) -> list[View]:
    """The base branch (minus what the overlay shadows) and the overlay, or the branch alone."""
    if overlay is None:
        return [View(branch)]
    return [View(branch, frozenset(overlay.shadowed)), View(overlay.branch)]


def find_names(store: Store, repo_id: int, views: Sequence[View], names: Sequence[str],
               limit: int = MAX_LOOKUP) -> list[tuple[str, DocumentRef]]:
    """(branch, ref) of the documents named one of ``names`` (see ``Store.find_names``) in the view."""
    if not names:
        return []
    return [(view.branch, ref) for view in views for ref in store.find_names(repo_id, view.branch, names, limit)
            if ref.path not in view.hidden]


def callers(store: Store, repo_id: int, views: Sequence[View], names: Sequence[str],
            limit: int = MAX_LOOKUP) -> list[tuple[str, DocumentRef]]:
    """(branch, ref) of the documents that call one of ``names`` in the view."""
    if not names:
        return []
    return [(view.branch, ref) for view in views for ref in store.callers(repo_id, view.branch, names, limit)
            if ref.path not in view.hidden]


def find_paths(store: Store, repo_id: int, views: Sequence[View], paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` that name a file of the view (exactly or by its last components); a path the view hides
    (a file the pull request deleted or renamed) counts only where the overlay has it again."""
    found: set[str] = set()
    for view in views:
        for path in store.find_paths(repo_id, view.branch, [p for p in paths if p not in found]):
            clean = path.strip().lstrip("/")
            if not any(hidden == clean or hidden.endswith("/" + clean) for hidden in view.hidden):
                found.add(path)
    return found


def documents(store: Store, repo_id: int, found: Sequence[tuple[str, DocumentRef]]) -> list[Document]:
    """Full documents of ``found`` (branch, ref) pairs, in that order."""
    by_branch: dict[str, list[str]] = {}
    for branch, ref in found:
        by_branch.setdefault(branch, []).append(ref.id)
    loaded = {doc.id: doc for branch, ids in by_branch.items() for doc in store.documents(repo_id, branch, ids)}
    return [loaded[ref.id] for _, ref in found if ref.id in loaded]
