"""A pull request's overlay: the files it changes, indexed at its head on top of its base branch's index.

Only the paths the pull request changes relative to its merge base with the indexed base commit are indexed, as
their own scope (``overlay_branch(number)``); everything else is the base branch's. The paths it changed, renamed
or deleted are recorded as shadowed, so answers on the pull request never show the base's version of them.
Summaries and vectors come from the repository's caches, so only the functions the pull request changed cost
model calls.
"""

from __future__ import annotations

import logging

import git

from bot.config import LimitExceeded
from bot.documents import Overlay, Repository, overlay_branch
from bot.indexer.filters import IndexOptions
from bot.indexer.pipeline import IndexReport, index_branch
from bot.indexer.plan import Changes, find_changes, resolve_commit
from bot.runtime import Runtime

log = logging.getLogger(__name__)

MAX_SHADOWED = 3000  # paths one overlay may change (GitHub lists at most 3,000 files of a pull request)


class OverlayError(ValueError):
    """A pull request that cannot be overlaid (no indexed base, no common history); the message says why."""


def overlay_changes(git_repo: git.Repo, base_commit: str, head: str) -> tuple[str, Changes, tuple[str, ...]]:
    """The merge base of ``head`` with ``base_commit``, the files to index at ``head`` and the paths shadowed."""
    new = git_repo.commit(head)
    base = resolve_commit(git_repo, base_commit)
    merge_bases = git_repo.merge_base(base, new) if base is not None else []
    if not merge_bases:
        raise OverlayError(f"the pull request head {head[:12]} shares no history with the indexed base "
                           f"{base_commit[:12]}")
    merge_base = merge_bases[0]
    diff = find_changes(git_repo, merge_base, new, full=False)
    shadowed = tuple(sorted(diff.changed | diff.gone))
    if len(shadowed) > MAX_SHADOWED:
        raise LimitExceeded(f"the pull request changes {len(shadowed)} files, more than the {MAX_SHADOWED} an "
                            "overlay takes; it is answered from its base branch")
    # full: the overlay's documents of files the pull request no longer changes go away
    return merge_base.hexsha, Changes(changed=set(diff.changed), full=True), shadowed


def index_overlay(runtime: Runtime, git_repo: git.Repo, repo: Repository, number: int, base: str, head: str, *,
                  fork: bool, options: IndexOptions, money_left: float | None = None) -> IndexReport | None:
    """Bring pull request ``number``'s overlay on ``base`` to ``head``; None when it is there already."""
    store, embedder = runtime.store, runtime.embedder
    base_state = store.branch_state(repo.id, base)
    if base_state is None:
        raise OverlayError(f"the base branch {base} is not indexed")
    branch = overlay_branch(number)
    current, state = store.overlay(repo.id, branch), store.branch_state(repo.id, branch)
    if (current is not None and state is not None and (current.head, current.base) == (head, base)
            and state.commit == head and (state.embedder, state.dimension) == (embedder.name, embedder.dimension)):
        return None
    merge_base, changes, shadowed = overlay_changes(git_repo, base_state.commit, head)
    # recorded first: the overlay counts as ready only once the run records ``head`` as its commit, last
    store.set_overlay(Overlay(repo.id, number, base, head, merge_base, shadowed, fork))
    log.info("indexing pull request overlay", extra={"repo_id": repo.id, "number": number, "base": base,
                                                     "head": head, "files": len(changes.changed),
                                                     "shadowed": len(shadowed)})
    return index_branch(runtime, git_repo, repo, branch, head, options=options, money_left=money_left,
                        changes=changes)


def ready_overlay(runtime: Runtime, repo_id: int, number: int, head: str) -> Overlay | None:
    """The overlay of pull request ``number`` when it is indexed at ``head`` on a base that is indexed."""
    store = runtime.store
    branch = overlay_branch(number)
    overlay, state = store.overlay(repo_id, branch), store.branch_state(repo_id, branch)
    if overlay is None or state is None or not (overlay.head == state.commit == head):
        return None
    return overlay if store.branch_state(repo_id, overlay.base) is not None else None
