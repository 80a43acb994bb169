"""One indexing run of a repository branch: plan, summarize, embed, write, then record the commit."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import git
import numpy as np

from bot.documents import Document, Repository, Unit
from bot.indexer.chunker import Limits
from bot.indexer.filters import IndexOptions
from bot.indexer.plan import Plan, Progress, classify, deletions, find_changes, read_units, resolve_commit
from bot.llm.offline import extractive_summary
from bot.metrics import INDEX_SECONDS
from bot.runtime import Runtime

log = logging.getLogger(__name__)

_WRITE_BATCH = 256
_EMBED_BATCH = 64


@dataclass
class IndexReport:
    """What a run did; ``to_json`` gives the ``index --json`` object."""

    repo: str
    branch: str
    commit: str
    repo_id: int = 0
    previous_commit: str | None = None
    files_changed: int = 0
    functions_total: int = 0
    functions_added: int = 0
    functions_updated: int = 0
    functions_removed: int = 0
    functions_unchanged: int = 0
    functions_moved: int = 0
    summaries_generated: int = 0
    summaries_reused: int = 0
    summaries_deferred: int = 0  # over the run's budget: a fallback summary now, a model summary in a later run
    functions_failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full: bool = False
    files_skipped: list[dict[str, str]] = field(default_factory=list)
    secrets_redacted: int = 0
    llm: str = ""
    embedder: str = ""
    usage: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


def summary_key(model: str, lang: str, content_hash: str) -> str:
    """Cache key of a summary: the same code summarized by the same model in the same language."""
    return f"{model}|{lang}|{content_hash}"


def embedding_text(name: str, summary: str) -> str:
    """What gets embedded for a function: its name in words and its summary (location-free, so moves reuse it)."""
    return f"{name}\n{summary}"


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _usage_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    delta: dict[str, dict[str, float]] = {}
    for region, figures in after.items():
        old = before.get(region, {})
        changed = {key: round(value - old.get(key, 0), 6) for key, value in figures.items()}
        if any(changed.values()):
            delta[region] = changed
    return delta


def index_branch(
    runtime: Runtime,
    git_repo: git.Repo,
    repo: Repository,
    branch: str,
    commit: str,
    *,
    full: bool = False,
    options: IndexOptions | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Bring the index of ``repo``'s ``branch`` from its recorded commit to ``commit``."""
    started = time.monotonic()
    options = options or IndexOptions.from_settings(runtime.settings)
    store, model, embedder = runtime.store, runtime.text_model, runtime.embedder
    new = git_repo.commit(commit)
    state = store.branch_state(repo.id, branch)
    reembed = state is not None and (state.embedder, state.dimension) != (embedder.name, embedder.dimension)
    old = None if reembed else resolve_commit(git_repo, state.commit if state else None)
    changes = find_changes(git_repo, old, new, full or reembed)
    report = IndexReport(repo=repo.name, repo_id=repo.id, branch=branch, commit=new.hexsha,
                         previous_commit=state.commit if state else None, full=changes.full, llm=model.name,
                         embedder=embedder.name)
    usage_before = model.usage()
    log.info("index run", extra={"repo": repo.name, "repo_id": repo.id, "branch": branch, "commit": new.hexsha, "full": changes.full,
                                 "files": changes.files_changed})

    plan = Plan()
    units = list(read_units(new, changes.changed, options, runtime.settings.max_unit_lines, plan, progress,
                            Limits.from_settings(runtime.settings)))
    old_refs = (store.refs(repo.id, branch) if changes.full
                else store.refs(repo.id, branch, changes.changed | changes.gone))
    classify(repo.id, branch, units, old_refs, reembed, plan)
    _retry_pending(runtime, repo.id, branch, plan)

    summaries, fresh, failed, deferred = _summaries(runtime, repo.id, plan.to_summarize, options.summary_lang,
                                                    progress)
    documents = _documents(repo.id, branch, plan, summaries, [*failed, *deferred], options.summary_lang, runtime)
    _embed(runtime, repo.id, documents, progress)
    _write(runtime, repo.id, branch, documents, deletions(plan), progress)
    store.set_state(repo, branch, new.hexsha, embedder.name, embedder.dimension)

    after = store.branch_state(repo.id, branch)
    report.files_changed = changes.files_changed
    report.functions_total = after.functions if after else 0
    report.functions_added, report.functions_updated = plan.added, plan.updated
    report.functions_removed, report.functions_unchanged, report.functions_moved = (
        len(plan.removed), plan.unchanged, plan.moved)
    report.summaries_generated = fresh
    report.summaries_reused = len(plan.to_summarize) - fresh - len(failed) - len(deferred) + plan.moved
    report.summaries_deferred = len(deferred)
    report.functions_failed = sorted(f"{unit.path}::{unit.name}" for unit in failed)
    report.files_skipped = [{"path": path, "reason": reason} for path, reason in plan.skipped]
    report.secrets_redacted = plan.secrets_redacted
    report.usage = _usage_delta(usage_before, model.usage())
    report.seconds = round(time.monotonic() - started, 3)
    INDEX_SECONDS.observe(report.seconds)
    log.info("index run done", extra={"repo": repo.name, "repo_id": repo.id, "branch": branch, **{
        k: v for k, v in report.to_json().items() if isinstance(v, int | float)}})
    return report


def _retry_pending(runtime: Runtime, repo_id: int, branch: str, plan: Plan) -> None:
    """Functions left with a fallback summary by an earlier run are summarized again."""
    planned = {doc_id for doc_id, _ in plan.to_summarize} | {ref.id for ref in plan.removed}
    planned |= {doc_id for doc_id, _, _ in plan.reused} | {ref.id for _, _, ref in plan.reused}
    pending = [ref for ref in runtime.store.pending(repo_id, branch) if ref.id not in planned]
    for document in runtime.store.documents(repo_id, branch, [ref.id for ref in pending]):
        unit = Unit(path=document.path, language=document.language, kind=document.kind, name=document.name,
                    start_line=document.start_line, end_line=document.end_line, code=document.code)
        plan.to_summarize.append((document.id, unit))
        # the stored unit lacks its context, so its hash would differ from the chunker's: keep the stored one
        plan.kept_hashes[document.id] = document.content_hash


def _summaries(
    runtime: Runtime, repo_id: int, wanted: Sequence[tuple[str, Unit]], lang: str, progress: Progress | None
) -> tuple[dict[str, str], int, list[Unit], list[Unit]]:
    """Summaries by content hash: cached ones (of this repository only) reused, the rest from the model, at most
    ``RAGCODE_MAX_SUMMARIES_PER_RUN`` of them; also the units that failed and those deferred past the budget."""
    model, store = runtime.text_model, runtime.store
    by_hash = {unit.hash: unit for _, unit in wanted}
    keys = {content: summary_key(model.name, lang, content) for content in by_hash}
    cached = store.cached_summaries(repo_id, list(keys.values()))
    summaries = {content: cached[key] for content, key in keys.items() if key in cached}
    missing = [unit for content, unit in by_hash.items() if content not in summaries]
    budget = runtime.settings.max_summaries_per_run
    over_budget = {unit.hash for unit in missing[budget:]}
    if over_budget:
        log.warning("summary budget reached", extra={"repo_id": repo_id, "budget": budget,
                                                     "deferred": len(over_budget)})
    missing = missing[:budget]
    failed_hashes: set[str] = set()
    if missing:
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress("summarizing", done, len(missing))

        result = model.summarize(missing, lang, advance)
        store.cache_summaries(repo_id, {keys[content]: text for content, text in result.summaries.items() if text})
        summaries.update({content: text for content, text in result.summaries.items() if text})
        failed_hashes = {unit.hash for unit in missing if unit.hash not in summaries}
        for content in failed_hashes:
            log.warning("summary failed", extra={"path": by_hash[content].path, "function": by_hash[content].name,
                                                 "error": result.failed.get(content, "no summary returned")})
    fresh_hashes = {unit.hash for unit in missing} - failed_hashes
    fresh = sum(1 for _, unit in wanted if unit.hash in fresh_hashes)
    failed = [unit for _, unit in wanted if unit.hash in failed_hashes]
    deferred = [unit for _, unit in wanted if unit.hash in over_budget]
    return summaries, fresh, failed, deferred


def _documents(
    repo_id: int, branch: str, plan: Plan, summaries: dict[str, str], failed: list[Unit], lang: str, runtime: Runtime
) -> list[Document]:
    """Documents to write: new summaries, and reused summaries and vectors of moved or shifted functions."""
    failed_hashes = {unit.hash for unit in failed}
    documents = []
    for doc_id, unit in plan.to_summarize:
        ok = unit.hash not in failed_hashes
        summary = summaries[unit.hash] if ok else extractive_summary(unit, lang)
        document = _document(doc_id, repo_id, branch, unit, summary, ok, None)
        document.content_hash = plan.kept_hashes.get(doc_id, document.content_hash)
        documents.append(document)
    previous = {d.id: d for d in runtime.store.documents(repo_id, branch, [ref.id for _, _, ref in plan.reused])}
    for doc_id, unit, ref in plan.reused:
        old = previous.get(ref.id)
        if old is None:  # vanished since planning; summarize it next time
            documents.append(_document(doc_id, repo_id, branch, unit, extractive_summary(unit, lang), False, None))
            continue
        documents.append(_document(doc_id, repo_id, branch, unit, old.summary, old.summary_ok, old.vector))
    return documents


def _document(doc_id: str, repo_id: int, branch: str, unit: Unit, summary: str, ok: bool,
              vector: np.ndarray | None) -> Document:
    return Document(id=doc_id, repo_id=repo_id, branch=branch, path=unit.path, name=unit.name, kind=unit.kind,
                    language=unit.language, start_line=unit.start_line, end_line=unit.end_line, code=unit.code,
                    content_hash=unit.hash, summary=summary, summary_ok=ok, vector=vector)


def _embed(runtime: Runtime, repo_id: int, documents: list[Document], progress: Progress | None) -> None:
    """Vectors for documents without one (or of another dimension): from the cache, else from the embedder."""
    embedder, store = runtime.embedder, runtime.store
    todo = [d for d in documents if d.vector is None or d.vector.shape[-1] != embedder.dimension]
    texts = {d.id: embedding_text(d.name, d.summary) for d in todo}
    keys = {d.id: _text_key(texts[d.id]) for d in todo}
    cached = store.cached_vectors(repo_id, embedder.name, list(set(keys.values())))
    missing: dict[str, str] = {}
    waiting: list[Document] = []
    for document in todo:
        key = keys[document.id]
        if key in cached:
            document.vector = cached[key]
        else:
            missing.setdefault(key, texts[document.id])
            waiting.append(document)
    fresh: dict[str, np.ndarray] = {}
    items = list(missing.items())
    for start in range(0, len(items), _EMBED_BATCH):
        batch = items[start : start + _EMBED_BATCH]
        vectors = embedder.embed_documents([text for _, text in batch])
        fresh.update({key: vector for (key, _), vector in zip(batch, vectors, strict=True)})
        store.cache_vectors(repo_id, embedder.name, {key: fresh[key] for key, _ in batch})
        if progress:
            progress("embedding", min(start + _EMBED_BATCH, len(items)), len(items))
    for document in waiting:
        document.vector = fresh[keys[document.id]]


def _write(runtime: Runtime, repo_id: int, branch: str, documents: list[Document], deletes: list[str],
           progress: Progress | None) -> None:
    """Write in batches; deletions go with the first batch."""
    total = max(len(documents), 1)
    for start in range(0, total, _WRITE_BATCH):
        runtime.store.write(repo_id, branch, documents[start : start + _WRITE_BATCH], deletes if start == 0 else [])
        if progress:
            progress("writing", min(start + _WRITE_BATCH, len(documents)), len(documents))
