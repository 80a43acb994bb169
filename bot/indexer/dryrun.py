"""``ragcode index PATH --dry-run``: plan a run exactly as ``index_branch`` would and estimate it.

No model is built or called and nothing is written: the embedded index is opened read-only (and not at all,
with no data folder created, when there is none yet), so every function counts as new.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import git
import numpy as np

from bot.config import Settings
from bot.documents import BranchState, Document, DocumentRef, Repository
from bot.embed import embedder_spec
from bot.indexer.estimate import Estimate, ModelEstimate, estimate_run
from bot.indexer.filters import IndexOptions
from bot.indexer.plan import PlanStore, Progress, plan_run
from bot.llm import text_model_name
from bot.store.base import StoreError


class ReadStore(PlanStore, Protocol):
    """The reads of a dry run: a plan's, and finding the repository by name."""

    def repository_ids(self, name: str) -> list[int]:
        """Ids of the indexed repositories last known under ``name``."""
        ...

    def branch_states(self, repo_id: int) -> list[BranchState]:
        """Every indexed branch of one repository."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


class EmptyStore:
    """The store before anything was indexed: no branch, no document, no cache."""

    def branch_state(self, repo_id: int, branch: str) -> BranchState | None:
        """Nothing is indexed."""
        return None

    def branch_states(self, repo_id: int) -> list[BranchState]:
        """Nothing is indexed."""
        return []

    def repository_ids(self, name: str) -> list[int]:
        """No repository is known."""
        return []

    def refs(self, repo_id: int, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """No document."""
        return []

    def pending(self, repo_id: int, branch: str) -> list[DocumentRef]:
        """No document."""
        return []

    def documents(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[Document]:
        """No document."""
        return []

    def cached_summaries(self, repo_id: int, keys: Sequence[str]) -> dict[str, str]:
        """No cache."""
        return {}

    def cached_vectors(self, repo_id: int, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """No cache."""
        return {}

    def close(self) -> None:
        """Nothing to release."""


def open_read_only(settings: Settings) -> ReadStore:
    """The configured store for reading; an empty one when the embedded index does not exist (yet)."""
    if settings.store == "opensearch":
        from bot.store.opensearch import OpenSearchStore

        return OpenSearchStore(settings)
    from bot.store.local import LocalStore

    directory = settings.home / "index"
    if not (directory / "ragcode.sqlite3").is_file():
        return EmptyStore()
    try:
        return LocalStore(directory, cache_bytes=settings.index_cache_mb << 20, read_only=True)
    except StoreError:  # an index of an older format: the next run rebuilds it from nothing
        return EmptyStore()


def identify(store: ReadStore, name: str, repo_id: int | None) -> Repository:
    """The repository a run of ``name`` (or of ``repo_id``) would index: the indexed one, else a new local one."""
    if repo_id is None:
        ids = store.repository_ids(name)
        if not ids:
            return Repository.local(name)
        repo_id = ids[0]
    states = store.branch_states(repo_id)
    return Repository(repo_id, name or (states[0].repo if states else f"repository/{repo_id}"),
                      states[0].installation if states else 0)


def dry_run(settings: Settings, git_repo: git.Repo, name: str, repo_id: int | None, branch: str, commit: str, *,
            full: bool = False, progress: Progress | None = None) -> Estimate:
    """The estimate of indexing ``commit`` as ``branch`` of the repository ``name``, calling and writing nothing."""
    store = open_read_only(settings)
    try:
        spec = embedder_spec(settings)
        run = plan_run(store, settings, git_repo, identify(store, name, repo_id), branch, commit, full=full,
                       options=IndexOptions.from_settings(settings), model=text_model_name(settings),
                       embedder=(spec.name, spec.dimension), progress=progress, capped=settings.llm != "offline")
        return estimate_run(run, settings, store)
    finally:
        store.close()


def _line(label: str, part: ModelEstimate, name: str) -> str:
    cost = "price unknown" if part.cost_usd is None else f"${part.cost_usd:,.4f}"
    tokens = f"{part.input_tokens:,} in" + (f", {part.output_tokens:,} out" if part.output_tokens else "")
    calls = f"{part.calls:,} call{'' if part.calls == 1 else 's'}"
    return f"  {label:<10} {name}: {calls}, {tokens} tokens, {cost}, {_duration(part.seconds)}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def render(estimate: Estimate, listed: int = 10) -> str:
    """The estimate for people: what would be summarized, calls, tokens, money and time."""
    previous = f"from {estimate.previous_commit[:12]}" if estimate.previous_commit else "full index"
    if estimate.full and estimate.previous_commit:
        previous += ", everything re-planned"
    names = estimate.functions_to_summarize
    lines = [
        f"{estimate.repo}@{estimate.branch} {estimate.commit[:12]} ({previous}): plan only, no model called, "
        "nothing written",
        f"  files      {estimate.files_changed:,} to read, {estimate.files_skipped:,} skipped",
        f"  functions  +{estimate.functions_added:,} ~{estimate.functions_updated:,} -{estimate.functions_removed:,} "
        f"moved {estimate.functions_moved:,}, unchanged {estimate.functions_unchanged:,}",
        f"  summaries  {len(names):,} by {estimate.llm}, {estimate.summaries_cached:,} from the cache, "
        f"{estimate.summaries_deferred:,} deferred to later runs",
        *(f"             {name}" for name in names[:listed]),
        *([f"             … and {len(names) - listed:,} more"] if len(names) > listed else []),
        _line("model", estimate.summaries, estimate.llm),
        _line("embedder", estimate.embeddings, estimate.embedder),
    ]
    slots = (f" over {estimate.regions} regions × {estimate.concurrency} in flight" if estimate.regions else "")
    lines.append(f"  total      {estimate.calls:,} calls, {estimate.input_tokens:,} input and "
                 f"{estimate.output_tokens:,} output tokens, about ${estimate.cost_usd:,.2f}, "
                 f"{_duration(estimate.seconds)}{slots}")
    if estimate.unpriced_models:
        lines.append(f"  no price for {', '.join(estimate.unpriced_models)}: add it with RAGCODE_PRICES_FILE")
    lines.append(f"  prices as of {estimate.prices_as_of} ({estimate.prices_source})")
    return "\n".join(lines)
