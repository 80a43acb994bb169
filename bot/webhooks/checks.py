"""Check run texts: the title with the counts and the Markdown summary of an indexing run."""

from __future__ import annotations

from collections.abc import Sequence

from bot.indexer.estimate import Estimate
from bot.indexer.pipeline import IndexReport
from bot.markdown import escape_text, inline_code
from bot.spend import Budget

NAME = "ragcode"
MAX_SUMMARY = 60000  # GitHub rejects output.summary over 65535 characters


def title(report: IndexReport, config_errors: Sequence[str] = ()) -> str:
    """``3 added, 2 updated, 1 removed, 5 summarized`` (and a note on a broken configuration)."""
    text = (
        f"{report.functions_added} added, {report.functions_updated} updated, "
        f"{report.functions_removed} removed, {report.summaries_generated} summarized"
    )
    if report.functions_failed:
        text += f", {len(report.functions_failed)} failed"
    if report.summaries_deferred:
        text += f", {report.summaries_deferred} deferred"
        if report.budget_exhausted:
            text += " (monthly budget reached)"
    if config_errors:
        text += " (configuration has errors)"
    return text


def summary(report: IndexReport, config_errors: Sequence[str] = ()) -> str:
    """The Markdown summary: counts, summaries made and reused, model calls per region, time, failures."""
    previous = report.previous_commit[:12] if report.previous_commit else "nothing (full index)"
    rows = [
        ("Branch", inline_code(report.branch)),
        ("Commit", f"`{report.commit[:12]}` (from {previous})"),
        ("Files changed", report.files_changed),
        ("Functions total", report.functions_total),
        ("Added", report.functions_added),
        ("Updated", report.functions_updated),
        ("Moved", report.functions_moved),
        ("Removed", report.functions_removed),
        ("Unchanged", report.functions_unchanged),
        ("Summaries generated", report.summaries_generated),
        ("Summaries reused", report.summaries_reused),
        ("Failed", len(report.functions_failed)),
        ("Deferred to later runs (RAGCODE_MAX_SUMMARIES_PER_RUN or the monthly budget)", report.summaries_deferred),
        ("Tokens (input / output)", f"{report.input_tokens:,} / {report.output_tokens:,}"),
        ("Cost", _usd(report.cost_usd)),
        ("Estimated before the run", _estimate_cell(report.estimate)),
        ("Time", f"{report.seconds:.1f} s"),
    ]
    parts = ["| | |", "| --- | ---: |", *(f"| {name} | {value} |" for name, value in rows)]
    if report.budget_exhausted:
        parts += ["", f"**The installation's monthly budget is reached**: {report.summaries_deferred} functions got "
                  "an extractive summary instead of a model summary. They are summarized by the model in a later "
                  "run once the budget allows (next month, or a higher `RAGCODE_MONTHLY_BUDGET_USD`)."]
    usage = report.usage
    if usage:
        keys = sorted({key for numbers in usage.values() for key in numbers})
        parts += ["", "**Model calls per region**", "", "| region | " + " | ".join(keys) + " |",
                  "| --- |" + " ---: |" * len(keys)]
        for region, numbers in sorted(usage.items()):
            cells = " | ".join(_number(numbers.get(key, 0)) for key in keys)
            parts.append(f"| {inline_code(region)} | {cells} |")
    else:
        parts += ["", "No model calls (offline summaries)." if report.summaries_generated else "No model calls."]
    parts += _cost_table(report)
    if report.functions_failed:
        parts += ["", f"**Functions left without a summary ({len(report.functions_failed)})**", ""]
        parts += [f"- {inline_code(name)}" for name in report.functions_failed]
    parts += config_section(config_errors)
    return _clip("\n".join(parts))


def config_section(config_errors: Sequence[str]) -> list[str]:
    """Markdown lines reporting a broken ``.github/ragcode.yml``."""
    if not config_errors:
        return []
    lines = ["", "**`.github/ragcode.yml` has errors; defaults are used for these settings:**", ""]
    return lines + [f"- {escape_text(error)}" for error in config_errors]


def _usd(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _estimate_cell(estimate: dict[str, float]) -> str:
    if not estimate:
        return "—"
    return (f"{_usd(estimate['cost_usd'])}, {int(estimate['input_tokens']):,} / {int(estimate['output_tokens']):,} "
            f"tokens, {int(estimate['calls']):,} calls")


def _cost_table(report: IndexReport) -> list[str]:
    """Tokens and cost per model and region, and the prices used."""
    if not report.usage_by_model:
        return []
    lines = ["", "**Tokens and cost per model and region**", "",
             "| model | region | calls | input tokens | output tokens | cost |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in report.usage_by_model:
        lines.append(f"| {inline_code(row['model'] or '-')} | {inline_code(row['region'])} | {row['calls']:,} | "
                     f"{row['input_tokens']:,} | {row['output_tokens']:,} | {_usd(row['cost_usd'])} |")
    note = f"Prices as of {escape_text(report.prices_as_of)}."
    if report.unpriced_models:
        note += " No price for " + ", ".join(inline_code(model) for model in report.unpriced_models) + \
            " (counted as $0; add it with `RAGCODE_PRICES_FILE`)."
    return [*lines, "", note]


def planned(estimate: Estimate, budget: Budget | None = None) -> tuple[str, str]:
    """Title and summary of a check run once the run is planned, before any model call: the estimate."""
    count = len(estimate.functions_to_summarize)
    title = f"Indexing: {count:,} functions to summarize, about {_usd(estimate.cost_usd)}"
    rows = [
        ("Functions to summarize", f"{count:,}"),
        ("Summaries from the cache", f"{estimate.summaries_cached:,}"),
        ("Deferred to later runs", f"{estimate.summaries_deferred:,}"),
        ("Model", f"{inline_code(estimate.llm)}: {estimate.summaries.calls:,} calls"),
        ("Embedder", f"{inline_code(estimate.embedder)}: {estimate.embeddings.calls:,} calls"),
        ("Input / output tokens", f"{estimate.input_tokens:,} / {estimate.output_tokens:,}"),
        ("Estimated cost", _usd(estimate.cost_usd)),
        ("Estimated time", f"{estimate.seconds:,.0f} s"),
    ]
    if budget is not None:
        rows.append(("Monthly budget", f"{_usd(budget.spent_usd)} of {_usd(budget.limit_usd)} spent"))
    lines = ["**Estimate before any model call**", "", "| | |", "| --- | ---: |",
             *(f"| {name} | {value} |" for name, value in rows), "",
             f"Prices as of {escape_text(estimate.prices_as_of)}. The actual figures follow when the run completes."]
    return title, "\n".join(lines)


def progress(stage: str, done: int, total: int, note: str = "") -> tuple[str, str]:
    """Title and summary of an in-progress check run (``note``: the run's estimate, kept on every update)."""
    text = f"Indexing: {stage} {done}/{total}" if total else f"Indexing: {stage}"
    body = f"{text}.\n\nThe counts follow when the run completes."
    return text, f"{body}\n\n{note}" if note else body


def failure(reference: str, config_errors: Sequence[str] = (), limit: str = "") -> tuple[str, str]:
    """Title and summary of a run that stopped with an error: generic, with the reference id of the log line.

    Check runs are public on public repositories, and exception texts can hold account ids, role ARNs and
    internal URLs, so none of it goes here; only ``limit``, the message of a ``LimitExceeded``, is shown.
    """
    lines = ["Indexing stopped with an error.", "",
             *([escape_text(limit), ""] if limit else []),
             f"Reference {inline_code(reference)}: the service's logs have the details.", *config_section(config_errors)]
    return "Indexing failed", _clip("\n".join(lines))


def _number(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value)) if isinstance(value, (int, float)) else escape_text(str(value))


def _clip(text: str) -> str:
    if len(text) <= MAX_SUMMARY:
        return text
    return text[: MAX_SUMMARY - 40].rsplit("\n", 1)[0] + "\n\n… (list shortened)"
