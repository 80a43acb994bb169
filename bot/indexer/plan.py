"""Planning a run: which files changed between two commits, what became of each function, what must be summarized.

Planning only reads the store (``PlanStore``), so a dry run plans exactly as a real run would.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import git
import numpy as np
from gitdb.exc import BadName, BadObject

from bot.config import Settings
from bot.documents import BranchState, Document, DocumentRef, Repository, Unit, document_id
from bot.indexer.chunker import DEFAULT_LIMITS, Limits, TooLarge, chunk_file, unit_size
from bot.indexer.filters import IndexOptions, content_skip_reason, decode, path_skip_reason
from bot.indexer.secrets import redact

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class Changes:
    """Paths to re-chunk at the new commit and paths whose documents go away."""

    changed: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    full: bool = False

    @property
    def files_changed(self) -> int:
        """How many files the run looks at."""
        return len(self.changed | self.gone)


@dataclass
class Plan:
    """What becomes of every function in the changed files."""

    to_summarize: list[tuple[str, Unit]] = field(default_factory=list)  # (document id, unit): added or updated
    reused: list[tuple[str, Unit, DocumentRef]] = field(default_factory=list)  # moved, shifted or re-embedded
    removed: list[DocumentRef] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    kept_hashes: dict[str, str] = field(default_factory=dict)  # document id -> stored hash, for retried summaries
    secrets_redacted: int = 0


class PlanStore(Protocol):
    """The reads a plan needs (every ``Store`` has them)."""

    def branch_state(self, repo_id: int, branch: str) -> BranchState | None:
        """The indexed commit of the repository's branch."""
        ...

    def refs(self, repo_id: int, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        ...

    def pending(self, repo_id: int, branch: str) -> list[DocumentRef]:
        """Documents whose summary is still a fallback."""
        ...

    def documents(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents with these ids."""
        ...

    def cached_summaries(self, repo_id: int, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the repository's cache by key."""
        ...

    def cached_vectors(self, repo_id: int, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the repository's cache by embedder and text hash."""
        ...


def summary_key(model: str, lang: str, content_hash: str) -> str:
    """Cache key of a summary: the same code summarized by the same model in the same language."""
    return f"{model}|{lang}|{content_hash}"


def embedding_text(name: str, summary: str) -> str:
    """What gets embedded for a function: its name in words and its summary (location-free, so moves reuse it)."""
    return f"{name}\n{summary}"


def text_key(text: str) -> str:
    """Cache key of an embedded text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def resolve_commit(repository: git.Repo, sha: str | None) -> git.Commit | None:
    """The commit ``sha`` names in ``repository``, or None when it is unknown there."""
    if not sha:
        return None
    try:
        return repository.commit(sha)
    except (BadName, BadObject, ValueError):
        return None


def find_changes(repository: git.Repo, old: git.Commit | None, new: git.Commit, full: bool) -> Changes:
    """Changed and removed paths from ``old`` to ``new`` (renames followed); everything when there is no ``old``."""
    if old is None or full:
        paths = {str(blob.path) for blob in new.tree.traverse() if isinstance(blob, git.Blob)}
        return Changes(changed=paths, full=True)
    changes = Changes()
    for diff in old.diff(new, M=True):
        if diff.change_type in ("D", "R") and diff.a_path:
            changes.gone.add(diff.a_path)
        if diff.change_type != "D" and diff.b_path:
            changes.changed.add(diff.b_path)
    return changes


def read_units(
    new: git.Commit, paths: Iterable[str], options: IndexOptions, max_unit_lines: int, plan: Plan,
    progress: Progress | None = None, limits: Limits = DEFAULT_LIMITS,
) -> Iterator[Unit]:
    """Units of the files at ``new``: filtered, decoded, redacted and chunked; skipped files noted in ``plan``.

    Files are read in path order. A file whose units would exceed a per-file limit is skipped; once a file's
    units would take the run past ``limits.run_units`` or ``limits.run_chars``, it and every later file are
    skipped, so the same run always indexes the same files.
    """
    wanted = sorted(paths)
    units_left, chars_left = limits.run_units, limits.run_chars
    run_full: str | None = None
    for done, path in enumerate(wanted, 1):
        if progress and (done % 200 == 0 or done == len(wanted)):
            progress("chunking", done, len(wanted))
        reason = path_skip_reason(path, options)
        if reason:
            if reason not in ("not source code", "not included"):
                plan.skipped.append((path, reason))
            continue
        try:
            blob = new.tree / path
        except KeyError:
            continue
        if blob.type != "blob" or blob.mode == 0o120000:  # submodules and symlinks carry no code of their own
            continue
        if run_full:
            plan.skipped.append((path, run_full))
            continue
        if blob.size > options.max_file_bytes:
            plan.skipped.append((path, f"larger than {options.max_file_bytes} bytes"))
            continue
        data = blob.data_stream.read()
        reason = content_skip_reason(data, options, path)
        if reason:
            plan.skipped.append((path, reason))
            continue
        text, secrets = redact(decode(data), path)
        plan.secrets_redacted += secrets
        try:
            units = chunk_file(path, text, max_unit_lines, limits)
        except TooLarge as error:
            plan.skipped.append((path, str(error)))
            continue
        except Exception:  # a chunker bug must not stop the run; the file is reported as skipped
            log.exception("chunking failed", extra={"path": path})
            plan.skipped.append((path, "could not be chunked"))
            continue
        chars = sum(map(unit_size, units))
        if len(units) > units_left or chars > chars_left:
            run_full = (
                f"not indexed: the run reached its limit of {limits.run_units} units (RAGCODE_MAX_RUN_UNITS)"
                if len(units) > units_left else
                f"not indexed: the run reached its limit of {limits.run_chars} characters (RAGCODE_MAX_RUN_UNIT_CHARS)"
            )
            log.warning("run limit reached", extra={"path": path, "reason": run_full})
            plan.skipped.append((path, run_full))
            continue
        units_left -= len(units)
        chars_left -= chars
        yield from units


def classify(
    repo_id: int, branch: str, units: Iterable[Unit], old_refs: Iterable[DocumentRef], reembed: bool, plan: Plan,
) -> Plan:
    """Sort each unit into added, updated, moved, unchanged; what is left of the old documents is removed."""
    old_by_id = {ref.id: ref for ref in old_refs}
    unmatched: list[tuple[str, Unit]] = []
    for unit in units:
        doc_id = document_id(repo_id, branch, unit.path, unit.name, unit.ordinal)
        old = old_by_id.pop(doc_id, None)
        if old is None:
            unmatched.append((doc_id, unit))
        elif old.content_hash != unit.hash:
            plan.updated += 1
            plan.to_summarize.append((doc_id, unit))
        else:
            plan.unchanged += 1
            # rewritten (summary and vector kept) when it moved within the file or what it calls changed: an
            # import elsewhere in the file can change where a call goes without changing the function's code
            if reembed or (old.start_line, old.end_line, old.calls) != (unit.start_line, unit.end_line, unit.calls):
                plan.reused.append((doc_id, unit, old))
    leftovers: dict[str, list[DocumentRef]] = {}
    for ref in old_by_id.values():
        leftovers.setdefault(ref.content_hash, []).append(ref)
    for doc_id, unit in unmatched:
        candidates = leftovers.get(unit.hash)
        if candidates:
            plan.moved += 1
            plan.reused.append((doc_id, unit, candidates.pop()))
        else:
            plan.added += 1
            plan.to_summarize.append((doc_id, unit))
    moved_from = {ref.id for _, _, ref in plan.reused}
    plan.removed = [ref for ref in old_by_id.values() if ref.id not in moved_from]
    return plan


def deletions(plan: Plan) -> list[str]:
    """Ids to delete: removed documents and the old copies of moved ones."""
    return [ref.id for ref in plan.removed] + [ref.id for doc_id, _, ref in plan.reused if ref.id != doc_id]


@dataclass
class RunPlan:
    """Everything a run decides before it calls a model: the plan, and which summaries it reuses or asks for."""

    repo: Repository
    branch: str
    new: git.Commit
    state: BranchState | None
    reembed: bool
    changes: Changes
    plan: Plan
    model: str  # the text model's name (part of summary cache keys)
    lang: str
    keys: dict[str, str]  # content hash -> summary cache key, for every unit to summarize
    cached: dict[str, str]  # content hash -> summary found in the repository's cache
    missing: list[Unit]  # one unit per content hash to summarize with the model in this run
    deferred: set[str] = field(default_factory=set)  # content hashes left to later runs
    deferred_for_budget: int = 0  # how many of them for the installation's monthly budget


def retry_pending(store: PlanStore, repo_id: int, branch: str, plan: Plan) -> None:
    """Functions left with a fallback summary by an earlier run are summarized again."""
    planned = {doc_id for doc_id, _ in plan.to_summarize} | {ref.id for ref in plan.removed}
    planned |= {doc_id for doc_id, _, _ in plan.reused} | {ref.id for _, _, ref in plan.reused}
    pending = [ref for ref in store.pending(repo_id, branch) if ref.id not in planned]
    for document in store.documents(repo_id, branch, [ref.id for ref in pending]):
        unit = Unit(path=document.path, language=document.language, kind=document.kind, name=document.name,
                    start_line=document.start_line, end_line=document.end_line, code=document.code,
                    calls=document.calls)
        plan.to_summarize.append((document.id, unit))
        # the stored unit lacks its context, so its hash would differ from the chunker's: keep the stored one
        plan.kept_hashes[document.id] = document.content_hash


def plan_run(
    store: PlanStore, settings: Settings, git_repo: git.Repo, repo: Repository, branch: str, commit: str, *,
    full: bool, options: IndexOptions, model: str, embedder: tuple[str, int | None], progress: Progress | None = None,
    changes: Changes | None = None, capped: bool = True,
) -> RunPlan:
    """Plan bringing ``repo``'s ``branch`` to ``commit``: changes, units, cached summaries, the run's share.

    ``embedder`` is the embedder's name and dimension (None when not known yet): another embedder than the
    branch was indexed with means re-embedding everything. When ``capped`` (a model whose calls cost: not the
    offline one), at most ``RAGCODE_MAX_SUMMARIES_PER_RUN`` summaries are asked for; the others are deferred to
    later runs. ``changes`` (a pull request overlay's files) replaces the diff from the indexed commit.
    """
    new = git_repo.commit(commit)
    state = store.branch_state(repo.id, branch)
    name, dimension = embedder
    reembed = state is not None and (state.embedder != name or (dimension is not None and state.dimension != dimension))
    old = None if reembed else resolve_commit(git_repo, state.commit if state else None)
    changes = changes or find_changes(git_repo, old, new, full or reembed)
    plan = Plan()
    units = list(read_units(new, changes.changed, options, settings.max_unit_lines, plan, progress,
                            Limits.from_settings(settings)))
    old_refs = (store.refs(repo.id, branch) if changes.full
                else store.refs(repo.id, branch, changes.changed | changes.gone))
    classify(repo.id, branch, units, old_refs, reembed, plan)
    retry_pending(store, repo.id, branch, plan)
    lang = options.summary_lang
    by_hash = {unit.hash: unit for _, unit in plan.to_summarize}
    keys = {content: summary_key(model, lang, content) for content in by_hash}
    found = store.cached_summaries(repo.id, list(keys.values()))
    cached = {content: found[key] for content, key in keys.items() if key in found}
    missing = [unit for content, unit in by_hash.items() if content not in cached]
    limit = settings.max_summaries_per_run if capped else len(missing)
    deferred = {unit.hash for unit in missing[limit:]}
    if deferred:
        log.warning("summary budget reached", extra={"repo_id": repo.id, "budget": limit, "deferred": len(deferred)})
    return RunPlan(repo, branch, new, state, reembed, changes, plan, model, lang, keys, cached, missing[:limit],
                   deferred)
