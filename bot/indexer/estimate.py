"""What a planned run will cost before any model is called: calls, tokens, USD and time.

Input tokens are estimated from the real summary prompt of every function to summarize (``bot.llm.tokens``);
output tokens from the expected length of a summary; embedding calls and tokens from the texts that have no
cached vector; money from the price table; time from the calls, the configured call latency and the slots
(regions × calls in flight per region).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.commands.calibrate import REFERENCE_KEYS, REFERENCE_REPO_ID
from bot.commands.reference_texts import REFERENCE_TEXTS
from bot.config import Settings
from bot.documents import Unit
from bot.embed import EmbedderSpec, embedder_spec, is_cohere
from bot.indexer.plan import PlanStore, RunPlan, embedding_text, text_key
from bot.llm import billed_text_model, text_model_slots
from bot.llm.offline import extractive_summary
from bot.llm.prices import PriceTable, load_prices
from bot.llm.prompts import summary_messages
from bot.llm.tokens import estimate_chat_tokens, estimate_tokens

# A summary is 2-4 sentences in <summary> tags, often after a one-line preamble: taking three sentences, about
# 180 characters of Korean (~1.2 tokens a syllable) or 310 of English (~4.5 characters a token).
SUMMARY_OUTPUT_TOKENS = {"ko": 150, "en": 70}
SUMMARY_TEXT_TOKENS = {"ko": 120, "en": 56}  # what is kept and embedded: the summary without preamble and tags
COHERE_MAX_TOKENS = 512  # Cohere Embed v3 embeds at most this many tokens of a text ("truncate": "END")
COHERE_MAX_CHARS = 2048
EMBED_CALL_SECONDS = 0.3  # one embedding request to Bedrock or an OpenAI-compatible server
LOCAL_EMBED_SECONDS = 0.1  # one text through the bundled model on one core
MAX_LISTED = 20_000  # functions named in a dry run's JSON


@dataclass
class ModelEstimate:
    """Calls, tokens and USD of one model; ``cost_usd`` is None when the model has no price."""

    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    seconds: float = 0.0


@dataclass
class Estimate:
    """A planned run's figures; ``to_json`` gives the ``index --dry-run --json`` object."""

    repo: str
    repo_id: int
    branch: str
    commit: str
    previous_commit: str | None
    full: bool
    files_changed: int
    files_skipped: int
    functions_added: int
    functions_updated: int
    functions_removed: int
    functions_moved: int
    functions_unchanged: int
    functions_to_summarize: list[str]  # path::name of every function whose summary the model writes
    summaries_cached: int  # distinct functions whose summary comes from the cache
    summaries_deferred: int  # left to later runs (RAGCODE_MAX_SUMMARIES_PER_RUN or the monthly budget)
    llm: str
    embedder: str
    summaries: ModelEstimate
    embeddings: ModelEstimate
    regions: int
    concurrency: int
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    unpriced_models: list[str] = field(default_factory=list)
    prices_as_of: str = ""
    prices_source: str = ""

    def to_json(self) -> dict[str, Any]:
        """The estimate as a JSON-ready dict (at most MAX_LISTED functions named)."""
        data = asdict(self)
        data["functions_to_summarize"] = self.functions_to_summarize[:MAX_LISTED]
        data["summaries_generated"] = len(self.functions_to_summarize)
        return data

    def brief(self) -> dict[str, Any]:
        """The totals alone (what an index report keeps of its estimate)."""
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": self.cost_usd, "seconds": self.seconds}


def summary_tokens(unit: Unit, lang: str) -> tuple[int, int]:
    """Estimated input and output tokens of summarizing ``unit`` (the real prompt, the expected answer)."""
    system, user = summary_messages(unit, lang)
    return estimate_chat_tokens(system, user), SUMMARY_OUTPUT_TOKENS["en" if lang == "en" else "ko"]


def _embed_tokens(tokens: int, spec: EmbedderSpec) -> int:
    """Tokens an embedding model bills for a text of ``tokens`` (Cohere embeds at most 512 of them)."""
    return min(tokens, COHERE_MAX_TOKENS) if is_cohere(spec.model) else tokens


def _embed_calls(texts: int, spec: EmbedderSpec) -> int:
    """Requests for ``texts`` handed over ``spec.batch`` at a time, each batch split into requests."""
    if not spec.texts_per_call or not texts:
        return 0
    full, rest = divmod(texts, spec.batch)
    return full * math.ceil(spec.batch / spec.texts_per_call) + math.ceil(rest / spec.texts_per_call)


def _price(prices: PriceTable, model: str, input_tokens: int, output_tokens: int) -> float | None:
    if not model:
        return 0.0
    price = prices.price(model)
    return None if price is None else round(price.cost(input_tokens, output_tokens), 6)


def afford(run: RunPlan, money_left: float, settings: Settings) -> None:
    """Keep only the summaries ``money_left`` USD pays for (in plan order); defer the rest to later runs.

    Only summaries are held back: a deferred function is embedded all the same (with its fallback summary), and a
    text model without a price (offline, most self-hosted ones) costs nothing to hold back.
    """
    price = load_prices(settings.prices_file).price(billed_text_model(settings))
    if price is None:
        return
    kept: list[Unit] = []
    for unit in run.missing:
        cost = price.cost(*summary_tokens(unit, run.lang))
        if cost > money_left:
            break
        money_left -= cost
        kept.append(unit)
    run.deferred |= {unit.hash for unit in run.missing[len(kept):]}
    run.deferred_for_budget = len(run.missing) - len(kept)
    run.missing = kept


def estimate_run(run: RunPlan, settings: Settings, store: PlanStore) -> Estimate:
    """The calls, tokens, USD and time of the planned run for the configured model, embedder and regions."""
    prices = load_prices(settings.prices_file)
    lang = "en" if run.lang == "en" else "ko"
    text_model = billed_text_model(settings)
    regions, concurrency = text_model_slots(settings)
    summaries = ModelEstimate(text_model or "offline")
    if text_model:
        for unit in run.missing:
            tokens_in, tokens_out = summary_tokens(unit, lang)
            summaries.calls += 1
            summaries.input_tokens += tokens_in
            summaries.output_tokens += tokens_out
        waves = math.ceil(summaries.calls / max(1, regions * concurrency))
        summaries.seconds = round(waves * settings.estimate_call_seconds, 1)
    summaries.cost_usd = _price(prices, text_model, summaries.input_tokens, summaries.output_tokens)

    spec = embedder_spec(settings)
    embeddings = _estimate_embeddings(run, spec, store, lang)
    embeddings.cost_usd = _price(prices, spec.model, embeddings.input_tokens, 0)

    plan = run.plan
    fresh = {unit.hash for unit in run.missing}
    estimate = Estimate(
        repo=run.repo.name, repo_id=run.repo.id, branch=run.branch, commit=run.new.hexsha,
        previous_commit=run.state.commit if run.state else None, full=run.changes.full,
        files_changed=run.changes.files_changed, files_skipped=len(plan.skipped),
        functions_added=plan.added, functions_updated=plan.updated, functions_removed=len(plan.removed),
        functions_moved=plan.moved, functions_unchanged=plan.unchanged,
        functions_to_summarize=[f"{unit.path}::{unit.name}" for _, unit in plan.to_summarize if unit.hash in fresh],
        summaries_cached=len(run.cached), summaries_deferred=len(run.deferred), llm=run.model,
        embedder=spec.name, summaries=summaries, embeddings=embeddings, regions=regions, concurrency=concurrency,
        prices_as_of=prices.as_of, prices_source=prices.source,
    )
    parts = (summaries, embeddings)
    estimate.calls = sum(part.calls for part in parts)
    estimate.input_tokens = sum(part.input_tokens for part in parts)
    estimate.output_tokens = sum(part.output_tokens for part in parts)
    estimate.cost_usd = round(sum(part.cost_usd or 0.0 for part in parts), 6)
    estimate.seconds = round(sum(part.seconds for part in parts), 1)
    estimate.unpriced_models = [part.model for part in parts if part.cost_usd is None]
    return estimate


def _estimate_embeddings(run: RunPlan, spec: EmbedderSpec, store: PlanStore, lang: str) -> ModelEstimate:
    """Texts the run embeds (one per distinct text without a cached vector), their calls and tokens."""
    known: dict[str, str] = {}  # text key -> text, for texts whose summary is known now
    unknown: dict[str, int] = {}  # content hash -> estimated tokens, for summaries the model has yet to write
    fresh = {unit.hash for unit in run.missing}
    for _, unit in run.plan.to_summarize:
        if unit.hash in fresh:
            unknown[unit.hash] = estimate_tokens(unit.name) + 1 + SUMMARY_TEXT_TOKENS[lang]
            continue
        summary = run.cached.get(unit.hash) or extractive_summary(unit, lang)
        text = embedding_text(unit.name, summary)
        known[text_key(text)] = text
    moved = run.plan.reused  # moved, shifted or (with another embedder) unchanged functions keep their summary
    if moved:
        for document in store.documents(run.repo.id, run.branch, [ref.id for _, _, ref in moved]):
            vector = document.vector
            stale = vector is None or (spec.dimension is not None and vector.shape[-1] != spec.dimension)
            if run.reembed or stale:
                text = embedding_text(document.name, document.summary)
                known[text_key(text)] = text
    cached = store.cached_vectors(run.repo.id, spec.name, list(known)) if known else {}
    texts = [text for key, text in known.items() if key not in cached]
    # the relevance cut's reference code, embedded once per embedder (in a batch of its own)
    reference = store.cached_vectors(REFERENCE_REPO_ID, spec.name, REFERENCE_KEYS)
    reference_texts = [text for key, text in zip(REFERENCE_KEYS, REFERENCE_TEXTS, strict=True) if key not in reference]
    estimate = ModelEstimate(spec.model or spec.name)
    count = len(texts) + len(unknown)
    cut = COHERE_MAX_CHARS if is_cohere(spec.model) else None
    estimate.input_tokens = sum(_embed_tokens(estimate_tokens(text[:cut]), spec)
                                for text in [*texts, *reference_texts]) + sum(
        _embed_tokens(tokens, spec) for tokens in unknown.values())
    if spec.texts_per_call:
        estimate.calls = _embed_calls(count, spec) + (_embed_calls(len(reference_texts), spec) if reference_texts
                                                      else 0)
        # batches go one after another; the requests of one batch run in parallel
        per_batch = math.ceil(min(count, spec.batch) / spec.texts_per_call)
        waves = math.ceil(count / spec.batch) * math.ceil(per_batch / spec.slots)
        estimate.seconds = round(waves * EMBED_CALL_SECONDS, 1)
    else:
        estimate.input_tokens = 0  # the bundled model: no calls, nothing billed
        estimate.seconds = round(count * LOCAL_EMBED_SECONDS, 1)
    return estimate

