"""One indexing run of a repository branch: plan, summarize, embed, write, then record the commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import git
import numpy as np

from bot.commands.calibrate import reference_vectors
from bot.documents import Document, Repository, Unit
from bot.embed import embedder_spec
from bot.indexer.estimate import Estimate, afford, estimate_run
from bot.indexer.filters import IndexOptions
from bot.indexer.plan import (
    Plan,
    Progress,
    RunPlan,
    deletions,
    embedding_text,
    plan_run,
    text_key,
)
from bot.llm import billed_text_model
from bot.llm.offline import extractive_summary
from bot.llm.prices import load_prices
from bot.llm.usage import Meter, metering
from bot.metrics import INDEX_SECONDS
from bot.runtime import Runtime

log = logging.getLogger(__name__)

_WRITE_BATCH = 256


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
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # the text model's calls per region
    input_tokens: int = 0  # every model call of the run: summaries and embeddings
    output_tokens: int = 0
    cost_usd: float = 0.0  # priced models only (see unpriced_models)
    usage_by_model: list[dict[str, Any]] = field(default_factory=list)  # per model and region, with cost_usd
    unpriced_models: list[str] = field(default_factory=list)  # models called that the price table lacks
    prices_as_of: str = ""
    budget_exhausted: bool = False  # the installation's monthly budget deferred summaries to later runs
    estimate: dict[str, Any] = field(default_factory=dict)  # calls, tokens, cost and time estimated before calls

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


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
    money_left: float | None = None,
    on_plan: Callable[[Estimate], None] | None = None,
) -> IndexReport:
    """Bring the index of ``repo``'s ``branch`` from its recorded commit to ``commit``.

    ``money_left`` (USD, None: no cap) limits the model summaries to what it pays for; the rest keep a fallback
    summary and are deferred. ``on_plan(estimate)`` runs once the run is planned, before any model call.
    """
    started = time.monotonic()
    options = options or IndexOptions.from_settings(runtime.settings)
    store, model, embedder = runtime.store, runtime.text_model, runtime.embedder
    with metering() as meter:
        run = plan_run(store, runtime.settings, git_repo, repo, branch, commit, full=full, options=options,
                       model=model.name, embedder=(embedder.name, embedder.dimension), progress=progress)
        if money_left is not None:
            afford(run, money_left, runtime.settings)
            if run.deferred_for_budget:
                log.warning("monthly budget reached", extra={"repo_id": repo.id, "money_left": money_left,
                                                             "deferred": run.deferred_for_budget})
        estimate = estimate_run(run, runtime.settings, store)
        log.info("index run", extra={"repo": repo.name, "repo_id": repo.id, "branch": branch,
                                     "commit": run.new.hexsha, "full": run.changes.full,
                                     "files": run.changes.files_changed, "estimate": estimate.brief()})
        if on_plan is not None:
            on_plan(estimate)
        plan = run.plan
        summaries, fresh, failed, deferred = _summaries(runtime, run, progress)
        documents = _documents(repo.id, branch, plan, summaries, [*failed, *deferred], run, runtime)
        _embed(runtime, repo.id, documents, progress)
        _write(runtime, repo.id, branch, documents, deletions(plan), progress)
        store.set_state(repo, branch, run.new.hexsha, embedder.name, embedder.dimension)
        # the relevance cut's reference code, embedded once into the store's cache so that searches (read-only)
        # find it there
        reference_vectors(runtime)

    after = store.branch_state(repo.id, branch)
    report = IndexReport(repo=repo.name, repo_id=repo.id, branch=branch, commit=run.new.hexsha,
                         previous_commit=run.state.commit if run.state else None, full=run.changes.full,
                         llm=model.name, embedder=embedder.name)
    report.files_changed = run.changes.files_changed
    report.functions_total = after.functions if after else 0
    report.functions_added, report.functions_updated = plan.added, plan.updated
    report.functions_removed, report.functions_unchanged, report.functions_moved = (
        len(plan.removed), plan.unchanged, plan.moved)
    report.summaries_generated = fresh
    report.summaries_reused = len(plan.to_summarize) - fresh - len(failed) - len(deferred) + plan.moved
    report.summaries_deferred = len(deferred)
    report.budget_exhausted = run.deferred_for_budget > 0
    report.functions_failed = sorted(f"{unit.path}::{unit.name}" for unit in failed)
    report.files_skipped = [{"path": path, "reason": reason} for path, reason in plan.skipped]
    report.secrets_redacted = plan.secrets_redacted
    report.estimate = estimate.brief()
    _usage(report, meter, runtime)
    report.seconds = round(time.monotonic() - started, 3)
    INDEX_SECONDS.observe(report.seconds)
    log.info("index run done", extra={"repo": repo.name, "repo_id": repo.id, "branch": branch, **{
        k: v for k, v in report.to_json().items() if isinstance(v, int | float)}})
    return report


def _usage(report: IndexReport, meter: Meter, runtime: Runtime) -> None:
    """Tokens and cost of the run's calls, by model and region, from its meter."""
    prices = load_prices(runtime.settings.prices_file)
    report.usage = meter.by_region(billed_text_model(runtime.settings))
    report.usage_by_model = meter.rows()
    report.input_tokens = int(meter.total("input_tokens"))
    report.output_tokens = int(meter.total("output_tokens"))
    report.cost_usd = round(meter.total("cost_usd"), 6)
    report.unpriced_models = sorted({row["model"] for row in report.usage_by_model
                                     if row["model"] and prices.price(row["model"]) is None})
    report.prices_as_of = prices.as_of


def _summaries(
    runtime: Runtime, run: RunPlan, progress: Progress | None
) -> tuple[dict[str, str], int, list[Unit], list[Unit]]:
    """Summaries by content hash: the cached ones and the model's for ``run.missing``; also the units that
    failed and those deferred to later runs (over ``RAGCODE_MAX_SUMMARIES_PER_RUN`` or the monthly budget)."""
    wanted = run.plan.to_summarize
    summaries = dict(run.cached)
    failed_hashes: set[str] = set()
    missing = run.missing
    if missing:
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress("summarizing", done, len(missing))

        result = runtime.text_model.summarize(missing, run.lang, advance)
        runtime.store.cache_summaries(run.repo.id, {run.keys[content]: text
                                                    for content, text in result.summaries.items() if text})
        summaries.update({content: text for content, text in result.summaries.items() if text})
        failed_hashes = {unit.hash for unit in missing if unit.hash not in summaries}
        for unit in missing:
            if unit.hash in failed_hashes:
                log.warning("summary failed", extra={"path": unit.path, "function": unit.name,
                                                     "error": result.failed.get(unit.hash, "no summary returned")})
    fresh_hashes = {unit.hash for unit in missing} - failed_hashes
    fresh = sum(1 for _, unit in wanted if unit.hash in fresh_hashes)
    failed = [unit for _, unit in wanted if unit.hash in failed_hashes]
    deferred = [unit for _, unit in wanted if unit.hash in run.deferred]
    return summaries, fresh, failed, deferred


def _documents(
    repo_id: int, branch: str, plan: Plan, summaries: dict[str, str], failed: list[Unit], run: RunPlan,
    runtime: Runtime,
) -> list[Document]:
    """Documents to write: new summaries, and reused summaries and vectors of moved or shifted functions (their
    vectors dropped when the embedder changed, even to one of the same dimension)."""
    lang = run.lang
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
        vector = None if run.reembed else old.vector
        documents.append(_document(doc_id, repo_id, branch, unit, old.summary, old.summary_ok, vector))
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
    keys = {d.id: text_key(texts[d.id]) for d in todo}
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
    size = embedder_spec(runtime.settings).batch  # enough texts at once to keep every region busy
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        vectors = embedder.embed_documents([text for _, text in batch])
        fresh.update({key: vector for (key, _), vector in zip(batch, vectors, strict=True)})
        store.cache_vectors(repo_id, embedder.name, {key: fresh[key] for key, _ in batch})
        if progress:
            progress("embedding", min(start + size, len(items)), len(items))
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
