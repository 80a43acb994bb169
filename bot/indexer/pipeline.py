"""One indexing run of a repository branch: plan, summarize, embed, write, then record the commit."""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import git

from bot.commands.calibrate import reference_vectors
from bot.documents import Document, Repository, Unit
from bot.embed import EmbedderSpec, embedder_spec
from bot.indexer.estimate import Estimate, afford, estimate_run
from bot.indexer.filters import IndexOptions
from bot.indexer.plan import (
    Changes,
    Progress,
    RunPlan,
    deletions,
    embedding_text,
    plan_run,
    text_key,
)
from bot.llm import billed_text_model
from bot.llm.base import SummaryResult
from bot.llm.offline import extractive_summary
from bot.llm.prices import load_prices
from bot.llm.usage import Meter, metering
from bot.metrics import INDEX_SECONDS
from bot.runtime import Runtime

log = logging.getLogger(__name__)

_WRITE_BATCH = 256
_STREAM_BATCH = 16  # model summaries written together (small: the last ones wait for no others)
_STREAM_WAIT = 0.25  # seconds the writer waits for more summaries before writing those it has
_EMBED_BATCHES_IN_FLIGHT = 4  # batches handed to an embedder that spreads them (requests, processes) at once


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
    searchable_seconds: float = 0.0  # until every document was written: searchable by keyword from then on

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
    changes: Changes | None = None,
) -> IndexReport:
    """Bring the index of ``repo``'s ``branch`` from its recorded commit to ``commit``.

    The run is staged so the repository answers early: every document is written at once with what is known
    (cached or fallback summaries, cached vectors) and the commit recorded as searchable by keyword; model
    summaries then stream in and are written as they arrive, each fed to the embedder at once, while the
    embedder fills in the vectors; the branch is marked complete last. An interrupted run leaves documents
    without vectors or with fallback summaries, which the next run of the branch finishes.

    ``money_left`` (USD, None: no cap) limits the model summaries to what it pays for; the rest keep a fallback
    summary and are deferred. ``on_plan(estimate)`` runs once the run is planned, before any model call.
    ``changes`` (a pull request overlay's files, ``bot/indexer/overlay.py``) replaces the diff from the indexed commit.
    """
    started = time.monotonic()
    options = options or IndexOptions.from_settings(runtime.settings)
    store, model, embedder = runtime.store, runtime.text_model, runtime.embedder  # models load on first use
    spec = embedder_spec(runtime.settings)
    # the dimension as configured (None: an OpenAI-compatible model's, known from its first answer); an embedder
    # given to the runtime directly says its own
    dimension = spec.dimension if embedder.name == spec.name else embedder.dimension
    spec = dataclasses.replace(spec, name=embedder.name, dimension=dimension)
    with metering() as meter:
        run = plan_run(store, runtime.settings, git_repo, repo, branch, commit, full=full, options=options,
                       model=model.name, embedder=(spec.name, spec.dimension), progress=progress,
                       changes=changes, capped=not model.instant)
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
        outcome = _Run(runtime, run, spec, _locked(progress)).execute()

    plan = run.plan
    after = store.branch_state(repo.id, branch)
    report = IndexReport(repo=repo.name, repo_id=repo.id, branch=branch, commit=run.new.hexsha,
                         previous_commit=run.state.commit if run.state else None, full=run.changes.full,
                         llm=model.name, embedder=spec.name)
    report.files_changed = run.changes.files_changed
    report.functions_total = after.functions if after else 0
    report.functions_added, report.functions_updated = plan.added, plan.updated
    report.functions_removed, report.functions_unchanged, report.functions_moved = (
        len(plan.removed), plan.unchanged, plan.moved)
    failed, deferred = outcome.failed, outcome.deferred
    report.summaries_generated = outcome.fresh
    report.summaries_reused = len(plan.to_summarize) - outcome.fresh - len(failed) - len(deferred) + plan.moved
    report.summaries_deferred = len(deferred)
    report.budget_exhausted = run.deferred_for_budget > 0
    report.functions_failed = sorted(f"{unit.path}::{unit.name}" for unit in failed)
    report.files_skipped = [{"path": path, "reason": reason} for path, reason in plan.skipped]
    report.secrets_redacted = plan.secrets_redacted
    report.estimate = estimate.brief()
    report.searchable_seconds = outcome.searchable_seconds
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


def _locked(progress: Progress | None) -> Progress | None:
    """``progress`` made safe to call from the run's threads."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(stage: str, done: int, total: int) -> None:
        with lock:
            progress(stage, done, total)

    return report


@dataclass
class _Outcome:
    """What a run's stages did beyond the plan."""

    fresh: int = 0  # units summarized by the model in this run
    failed: list[Unit] = field(default_factory=list)  # units left with a fallback summary after retries
    deferred: list[Unit] = field(default_factory=list)  # units left to later runs (budgets)
    searchable_seconds: float = 0.0  # from the start of the stages until every document was written


_DONE = object()  # the end of a stream


class _Run:
    """The stages of one run: write everything known, stream model summaries in, embed alongside, finish."""

    def __init__(self, runtime: Runtime, run: RunPlan, spec: EmbedderSpec, progress: Progress | None) -> None:
        self.runtime, self.run, self.spec, self.progress = runtime, run, spec, progress
        self.store = runtime.store
        self.repo_id, self.branch = run.repo.id, run.branch
        self.instant = runtime.text_model.instant
        self.outcome = _Outcome()
        self.summaries: queue.Queue[object] = queue.Queue()  # (hash, summary), then the SummaryResult
        self.to_embed: queue.Queue[object] = queue.Queue()  # lists of (document id, text), then _DONE
        self.embedded = self.to_embed_total = 0
        self.counting = threading.Lock()  # embedded: batches finish in more than one thread
        self.errors: list[BaseException] = []
        # units waiting for a model summary, by content hash: their document ids
        self.waiting: dict[str, list[tuple[str, Unit]]] = {}

    def execute(self) -> _Outcome:
        """Run every stage; errors of the background stages are raised here."""
        started = time.monotonic()
        run = self.run
        summarizer = None
        if run.missing and not self.instant:  # the first calls go out before anything else is done
            summarizer = _thread(self._summarize, "ragcode-summarize", self.errors)
        embedder = _thread(self._embed_stream, "ragcode-embed", self.errors)
        try:
            # While the first summaries are in flight: the relevance cut's reference code, embedded once into the
            # store's cache before the branch becomes searchable (searches, read-only, find it there instead of
            # queueing behind this run's embeddings); then stage 1, whose first Korean text loads Kiwi.
            reference_vectors(self.runtime)
            documents = self._known_documents()
            self._write(documents, deletions(run.plan))
            self._record(complete=False)
            self.outcome.searchable_seconds = round(time.monotonic() - started, 3)
            self._queue_embedding(documents)
            if summarizer is not None:
                self._stream_summaries()
                summarizer.join()
        finally:
            self.to_embed.put(_DONE)
            embedder.join()
        if self.errors:
            raise self.errors[0]
        self._embed_leftovers()
        self._record(complete=True)
        return self.outcome

    # -- stage 1: every document, with what is known now -----------------------------------------------------

    def _known_documents(self) -> list[Document]:
        """Documents of every planned unit: cached or (offline) immediate summaries, else a fallback for now."""
        run, lang = self.run, self.run.lang
        summaries = dict(run.cached)
        if run.missing and self.instant:
            total, done = len(run.missing), 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                if self.progress:
                    self.progress("summarizing", done, total)

            result = self.runtime.text_model.summarize(run.missing, lang, advance)
            made = {key: text for key, text in result.summaries.items() if text}
            self._cache_summaries(made)
            summaries.update(made)
            self.outcome.fresh = sum(1 for _, unit in run.plan.to_summarize if unit.hash in made)
            self.outcome.failed = [unit for _, unit in run.plan.to_summarize
                                   if unit.hash not in made and unit.hash not in run.deferred
                                   and unit.hash not in run.cached]
            self._log_failures(self.outcome.failed, result)
        elif run.missing:
            missing = {unit.hash for unit in run.missing}
            for doc_id, unit in run.plan.to_summarize:
                if unit.hash in missing:
                    self.waiting.setdefault(unit.hash, []).append((doc_id, unit))
        self.outcome.deferred = [unit for _, unit in run.plan.to_summarize if unit.hash in run.deferred]
        documents = []
        for doc_id, unit in run.plan.to_summarize:
            summary = summaries.get(unit.hash)
            documents.append(self._document(doc_id, unit, summary or extractive_summary(unit, lang), summary is not None))
        previous = {d.id: d for d in self.store.documents(self.repo_id, self.branch,
                                                          [ref.id for _, _, ref in run.plan.reused])}
        for doc_id, unit, ref in run.plan.reused:
            old = previous.get(ref.id)
            if old is None:  # vanished since planning; summarize it next time
                documents.append(self._document(doc_id, unit, extractive_summary(unit, lang), False))
                continue
            document = self._document(doc_id, unit, old.summary, old.summary_ok)
            document.vector = None if run.reembed else old.vector
            documents.append(document)
        return documents

    def _document(self, doc_id: str, unit: Unit, summary: str, ok: bool) -> Document:
        return Document(id=doc_id, repo_id=self.repo_id, branch=self.branch, path=unit.path, name=unit.name,
                        kind=unit.kind, language=unit.language, start_line=unit.start_line, end_line=unit.end_line,
                        code=unit.code, content_hash=self.run.plan.kept_hashes.get(doc_id, unit.hash),
                        summary=summary, summary_ok=ok, vector=None, calls=unit.calls)

    def _queue_embedding(self, documents: list[Document]) -> None:
        """Documents whose text is final for this run and that lack a vector go to the embedder."""
        final = [d for d in documents if d.vector is None and d.content_hash not in self._waiting_hashes()]
        self._send(final)

    def _waiting_hashes(self) -> set[str]:
        return {self.run.plan.kept_hashes.get(doc_id, unit.hash)
                for units in self.waiting.values() for doc_id, unit in units}

    def _send(self, documents: list[Document]) -> None:
        if documents:
            with self.counting:
                self.to_embed_total += len(documents)
            self.to_embed.put([(d.id, embedding_text(d.name, d.summary)) for d in documents])

    def _write(self, documents: list[Document], deletes: list[str]) -> None:
        """Write in batches; deletions go with the first batch."""
        total = max(len(documents), 1)
        dimension = self.spec.dimension if self.spec.dimension is not None else self.runtime.embedder.dimension
        for start in range(0, total, _WRITE_BATCH):
            self.store.write(self.repo_id, self.branch, documents[start:start + _WRITE_BATCH],
                             deletes if start == 0 else [], dimension=dimension)
            if self.progress:
                self.progress("writing", min(start + _WRITE_BATCH, len(documents)), len(documents))

    def _record(self, *, complete: bool) -> None:
        spec = self.spec
        dimension = spec.dimension if spec.dimension is not None else self.runtime.embedder.dimension
        self.store.set_state(self.run.repo, self.branch, self.run.new.hexsha, spec.name, dimension,
                             complete=complete)

    # -- stage 2: model summaries, written and embedded as they arrive ---------------------------------------

    def _summarize(self) -> None:
        """In a thread: ask the model; each summary goes on the queue as it arrives, then the whole result."""
        done = 0
        total = len(self.run.missing)

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if self.progress:
                self.progress("summarizing", done, total)

        try:
            result = self.runtime.text_model.summarize(
                self.run.missing, self.run.lang, advance, on_summary=lambda key, text: self.summaries.put((key, text)))
        except BaseException:
            self.summaries.put(_DONE)
            self.summaries.put(None)  # no result: the error reaches execute through the thread's errors
            raise
        self.summaries.put(_DONE)
        self.summaries.put(result)

    def _stream_summaries(self) -> None:
        """Write model summaries in small batches as they arrive (each batch then goes to the embedder)."""
        batch: dict[str, str] = {}
        waited = time.monotonic()
        while True:
            try:
                item = self.summaries.get(timeout=_STREAM_WAIT)
            except queue.Empty:
                item = None
            if item is _DONE:
                break
            if isinstance(item, tuple):
                key, text = item
                if text:
                    batch[key] = text
            if batch and (len(batch) >= _STREAM_BATCH or time.monotonic() - waited >= _STREAM_WAIT):
                self._apply(batch)
                batch, waited = {}, time.monotonic()
        if batch:
            self._apply(batch)
        result = self.summaries.get()
        if not isinstance(result, SummaryResult):  # the summarizer failed; its error is raised by execute
            return
        failed = [unit for units in self.waiting.values() for _, unit in units if unit.hash not in result.summaries]
        self._log_failures(failed, result)
        self.outcome.failed = failed
        # failed functions keep their fallback summary (retried by the next run) and are embedded with it
        leftovers = {doc_id for units in self.waiting.values() for doc_id, _ in units}
        self._send(self.store.documents(self.repo_id, self.branch, sorted(leftovers)))
        self.waiting.clear()

    @staticmethod
    def _log_failures(failed: list[Unit], result: SummaryResult) -> None:
        for unit in failed:
            log.warning("summary failed", extra={"path": unit.path, "function": unit.name,
                                                 "error": result.failed.get(unit.hash, "no summary returned")})

    def _apply(self, summaries: dict[str, str]) -> None:
        """Give the waiting documents their model summaries: write, cache, then send to the embedder."""
        self._cache_summaries(summaries)
        documents = []
        for key, text in summaries.items():
            for doc_id, unit in self.waiting.pop(key, []):
                documents.append(self._document(doc_id, unit, text, True))
                self.outcome.fresh += 1
        self._write(documents, [])
        self._send(documents)

    def _cache_summaries(self, summaries: dict[str, str]) -> None:
        keys = self.run.keys
        self.store.cache_summaries(self.repo_id, {keys[h]: text for h, text in summaries.items() if text and h in keys})

    # -- stage 3: vectors ------------------------------------------------------------------------------------

    def _embed_stream(self) -> None:
        """In a thread: embed what arrives, in batches large enough to keep the embedder busy.

        An embedder that makes requests, or embeds in several processes, gets the next batches while earlier ones
        are still out (its scheduler or its pool bounds the work), so no region or core waits for a batch's slowest
        call or chunk, and the run ends about one call after the last summary.
        """
        pending: list[tuple[str, str]] = []
        size = self._batch_size()
        finished = False
        in_flight: set[Future[None]] = set()
        overlap = _EMBED_BATCHES_IN_FLIGHT if self.spec.model or self._processes() > 1 else 1
        with ThreadPoolExecutor(overlap, thread_name_prefix="ragcode-embed") as pool:
            while not finished:
                item = self.to_embed.get()
                if item is _DONE:
                    finished = True
                elif isinstance(item, list):
                    pending.extend(item)
                # a batch embedder (many texts a call) waits for a full call; the others embed whenever nothing
                # more is queued, so the embedder never idles while summaries trickle in
                idle = self.to_embed.empty() and self.spec.texts_per_call <= 1
                while pending and (len(pending) >= size or finished or idle):
                    chunk, pending = pending[:size], pending[size:]
                    if len(in_flight) >= overlap:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # an embedding error ends the stream; execute raises it
                    # each batch runs in this thread's context: the run's meter counts its calls
                    in_flight.add(pool.submit(contextvars.copy_context().run, self._embed, chunk))
            for future in in_flight:
                future.result()

    def _batch_size(self) -> int:
        return self.spec.batch if self.spec.texts_per_call else self.spec.batch * self._processes()

    def _processes(self) -> int:
        """The embedder's worker processes (1 for one that embeds in this process or makes requests)."""
        return max(1, int(getattr(self.runtime.embedder, "processes", 1)))

    def _embed(self, items: list[tuple[str, str]]) -> None:
        """Vectors for (document id, text) pairs: from the repository's cache, else from the embedder."""
        embedder = self.runtime.embedder
        keys = {doc_id: text_key(text) for doc_id, text in items}
        texts = {keys[doc_id]: text for doc_id, text in items}
        cached = self.store.cached_vectors(self.repo_id, embedder.name, list(texts))
        missing = [key for key in texts if key not in cached]
        if missing:
            fresh = embedder.embed_documents([texts[key] for key in missing])
            computed = dict(zip(missing, fresh, strict=True))
            self.store.cache_vectors(self.repo_id, embedder.name, computed)
            cached.update(computed)
        self.store.set_vectors(self.repo_id, self.branch, {doc_id: cached[keys[doc_id]] for doc_id, _ in items})
        with self.counting:
            self.embedded += len(items)
            embedded, total = self.embedded, max(self.to_embed_total, self.embedded)
        if self.progress:
            self.progress("embedding", embedded, total)

    def _embed_leftovers(self) -> None:
        """Documents of the branch still without a vector (from an interrupted earlier run) get one now."""
        size = self._batch_size()
        while True:
            waiting = self.store.without_vectors(self.repo_id, self.branch, size)
            if not waiting:
                return
            self.to_embed_total += len(waiting)
            self._embed([(doc_id, embedding_text(name, summary)) for doc_id, name, summary in waiting])


def _thread(target: Callable[[], None], name: str, errors: list[BaseException]) -> threading.Thread:
    """``target`` started in a daemon thread with this thread's context (the run's meter counts its calls); an
    exception it raises is appended to ``errors``."""
    context = contextvars.copy_context()

    def body() -> None:
        try:
            context.run(target)
        except BaseException as error:  # re-raised by the run in its own thread
            errors.append(error)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
