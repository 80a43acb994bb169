"""The operators' status page as HTML: one self-contained document, charts drawn here as inline SVG, no script.

Everything shown is escaped (Jinja2's autoescape, ``markupsafe.escape`` inside the charts, by ``Markup.format``): repository and
branch names and parked jobs' errors come from outside. The only style sheet is ``STYLE``, allowed by its
hash in the page's Content-Security-Policy (``CONTENT_SECURITY_POLICY``), which allows nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections.abc import Callable, Sequence

from jinja2 import Environment
from markupsafe import Markup

from bot.llm.usage import Figures
from bot.spend import DayFigures
from bot.status import MAX_COUNTED, MAX_ERROR_CHARS, REGION_DAYS, BranchRow, StatusData

STYLE = """
:root{--fg:#1a202c;--muted:#5a6472;--line:#d8dde3;--bg:#fff;--panel:#f5f7f9;--ok:#2f855a;--warn:#b7791f;
--bad:#c53030;--cost:#2b6cb0}
@media (prefers-color-scheme:dark){:root{--fg:#e2e8f0;--muted:#a0aec0;--line:#3a4350;--bg:#14181d;
--panel:#1d232a;--ok:#48bb78;--warn:#ecc94b;--bad:#fc8181;--cost:#63b3ed}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0 auto;max-width:1180px;padding:12px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Noto Sans","Noto Sans KR",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.35rem;margin:.2rem 0}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem;padding-bottom:.2rem;border-bottom:1px solid var(--line)}
h3{font-size:.95rem;margin:1rem 0 .4rem}
p,li{overflow-wrap:anywhere}
.meta,.note{color:var(--muted);font-size:.85rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:.8rem 0}
.card{background:var(--panel);border-radius:6px;padding:8px 10px}
.card b{display:block;font-size:1.25rem}
.card span{color:var(--muted);font-size:.8rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{min-width:9rem;max-width:24rem;overflow-wrap:anywhere}
td.err{min-width:14rem;max-width:40rem;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:.8rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,300px),1fr));gap:10px;margin:.8rem 0}
figure{margin:0;background:var(--panel);border-radius:6px;padding:8px}
figcaption{font-size:.85rem;color:var(--muted);margin-bottom:4px}
svg.chart{display:block;width:100%;height:auto}
svg .s-ok{fill:var(--ok)}svg .s-warn{fill:var(--warn)}svg .s-bad{fill:var(--bad)}svg .s-cost{fill:var(--cost)}
svg .axis{stroke:var(--line);stroke-width:1}
svg text{fill:var(--muted);font:11px system-ui,sans-serif}
.legend{font-size:.8rem;color:var(--muted)}
.legend i{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin:0 .25rem 0 .6rem;
vertical-align:-1px}
.legend .k-ok{background:var(--ok)}.legend .k-warn{background:var(--warn)}.legend .k-bad{background:var(--bad)}
.legend .k-cost{background:var(--cost)}
meter{width:6rem}
.error{color:var(--bad);font-size:.9rem}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'none'; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
CLASSES = ("ok", "warn", "bad", "cost")

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>ragcode status</title>
<style>{{ style }}</style>
</head>
<body>
<header>
<h1>ragcode status</h1>
<p class="meta">Drawn {{ when(data.generated_at) }} UTC by {{ data.process.role }} (pid {{ data.process.pid }},
up {{ duration(data.generated_at - data.process.started) }}) · queue <code>{{ s.queue }}</code> · store
<code>{{ s.store }}</code> · model <code>{{ s.llm }}</code> · embedder <code>{{ s.embedder }}</code></p>
</header>

<section class="cards" id="summary">
<div class="card"><b>{{ num(data.repositories) }}</b><span>repositories shown</span></div>
<div class="card"><b>{{ num(data.queue.get("queued", 0)) }} / {{ num(data.queue.get("running", 0)) }}</b>
<span>jobs queued / running</span></div>
<div class="card"><b class="{{ 'bad' if data.queue.get('parked') else '' }}">{{ num(data.queue.get("parked", 0)) }}</b>
<span>jobs parked</span></div>
<div class="card"><b>{{ num(today.runs) }}</b><span>index runs today ({{ num(today.failed_runs) }} not clean)</span></div>
<div class="card"><b>{{ usd(month_total) }}</b><span>model spending this month</span></div>
<div class="card"><b>👍 {{ num(up) }} · 👎 {{ num(down) }}</b><span>reactions on replies</span></div>
</section>

<section class="charts" id="trends">
<figure>{{ runs_chart }}</figure>
<figure>{{ cost_chart }}</figure>
<figure>{{ regions_chart }}</figure>
</section>

<section id="repositories">
<h2>Repositories</h2>
{{ error("repositories") }}{{ error("heads") }}
{% if data.branches %}
<div class="scroll"><table>
<thead><tr><th>Repository</th><th>Branch</th><th>Behind its head</th><th>Index</th><th class="n">Functions</th>
<th>Indexed commit</th><th>Indexed</th></tr></thead>
<tbody>
{% for row in data.branches %}
<tr class="repo-row" data-repo-id="{{ row.state.repo_id }}">
<td class="name">{{ row.state.repo }}</td><td class="name">{{ row.state.branch }}</td>
<td>{{ behind(row) }}</td>
<td>{{ index_state(row) }}</td>
<td class="n">{{ num(row.state.functions) }}</td>
<td><code>{{ row.state.commit[:12] }}</code></td>
<td>{{ ago(row.state.indexed_at) }}</td>
</tr>
{% endfor %}
</tbody></table></div>
{% if data.branches_more %}<p class="note">… and {% if data.branches_more >= max_counted %}at least {% endif %}
{{- num(data.branches_more) }} more branches (the first
{{ data.branches|length }} by repository name are shown; <code>ragcode status --json</code> lists them all).</p>{% endif %}
{% elif "repositories" not in data.errors %}<p class="note">Nothing is indexed yet.</p>{% endif %}
<p class="note">Heads come from GitHub (read at most once a minute) or, when GitHub cannot be asked, from the
local mirror as last fetched; commits behind are counted in the mirror when it holds the head.</p>
</section>

<section id="runs">
<h2>Index runs</h2>
{{ error("runs") }}{{ error("figures") }}
{% if data.running %}
<h3>Running now</h3>
<div class="scroll"><table>
<thead><tr><th>Started</th><th>Repository</th><th>Branch</th><th>Commit</th><th>Trigger</th></tr></thead>
<tbody>{% for run in data.running %}
<tr class="running-row"><td>{{ ago(run.started_at) }}</td><td class="name">{{ run.repo }}</td>
<td class="name">{{ run.branch }}</td><td><code>{{ run.commit[:12] }}</code></td><td>{{ run.trigger }}</td></tr>
{% endfor %}</tbody></table></div>
{% endif %}
<h3>Recent runs</h3>
{% if data.runs %}
<div class="scroll"><table>
<thead><tr><th>Started</th><th>Repository</th><th>Branch</th><th>Outcome</th><th class="n">Time</th>
<th class="n">+ / ~ / −</th><th class="n">Summarized</th><th class="n">Failed</th><th class="n">Tokens in / out</th>
<th class="n">Cost</th><th>Commit</th><th>Trigger</th></tr></thead>
<tbody>{% for run in data.runs %}
<tr class="run-row"><td>{{ ago(run.started_at) }}</td><td class="name">{{ run.repo }}</td>
<td class="name">{{ run.branch }}</td>
<td class="{{ outcome_class(run.outcome) }}">{{ run.outcome }}</td>
<td class="n">{{ duration(run.seconds) }}</td>
<td class="n">{{ num(run.functions_added) }} / {{ num(run.functions_updated) }} / {{ num(run.functions_removed) }}</td>
<td class="n">{{ num(run.summaries_generated) }}{% if run.summaries_deferred %} (+{{ num(run.summaries_deferred) }}
deferred){% endif %}</td>
<td class="n {{ 'bad' if run.failures else '' }}">{{ num(run.failures) }}</td>
<td class="n">{{ num(run.input_tokens) }} / {{ num(run.output_tokens) }}</td>
<td class="n">{{ usd(run.cost_usd) }}</td><td><code>{{ run.commit[:12] }}</code></td>
<td>{{ run.trigger }}{% if run.full and run.trigger != "full index" %} (full){% endif %}</td></tr>
{% endfor %}</tbody></table></div>
<p class="note">The last {{ data.runs|length }} runs of every worker, from the shared ledger.</p>
{% elif "runs" not in data.errors %}<p class="note">No run recorded yet.</p>{% endif %}
</section>

<section id="queue">
<h2>Queue</h2>
{{ error("queue") }}
{% if data.queue %}<p>{{ num(data.queue.get("queued", 0)) }} queued · {{ num(data.queue.get("running", 0)) }}
running · <span class="{{ 'bad' if data.queue.get('parked') else '' }}">{{ num(data.queue.get("parked", 0)) }}
parked</span></p>{% endif %}
{% if data.parked %}
<div class="scroll"><table>
<thead><tr><th>Job</th><th>Kind</th><th>Repository</th><th class="n">Attempts</th><th>Parked</th>
<th>Last error</th></tr></thead>
<tbody>{% for job in data.parked %}
<tr class="parked-row"><td><code>{{ job.id }}</code></td><td>{{ job.kind }}</td><td class="name">{{ job.repo }}</td>
<td class="n">{{ job.attempts }}</td><td>{{ ago(job.updated_at) }}</td><td class="err">{{ job.error }}</td></tr>
{% endfor %}</tbody></table></div>
{% if data.parked_more %}<p class="note">… and {{ num(data.parked_more) }} more parked jobs
(<code>ragcode status</code> lists them all).</p>{% endif %}
<p class="note">Errors are cut to {{ max_error }} characters; the logs have the rest.</p>
{% endif %}
</section>

<section id="regions">
<h2>Model calls by region</h2>
{% if data.regions %}
<div class="scroll"><table>
<thead><tr><th>Region</th><th class="n">Calls</th><th class="n">Throttled</th><th class="n">Errors</th>
<th class="n">Mean latency</th><th class="n">Tokens in / out</th><th class="n">Cost</th></tr></thead>
<tbody>{% for region, f in data.regions.items() %}
<tr class="region-row"><td><code>{{ region }}</code></td><td class="n">{{ num(f.calls) }}</td>
<td class="n {{ 'warn' if f.throttles else '' }}">{{ num(f.throttles) }}</td>
<td class="n {{ 'bad' if f.errors else '' }}">{{ num(f.errors) }}</td>
<td class="n">{{ seconds(f.seconds / f.calls if f.calls else None) }}</td>
<td class="n">{{ num(f.input_tokens) }} / {{ num(f.output_tokens) }}</td><td class="n">{{ usd(f.cost_usd) }}</td></tr>
{% endfor %}</tbody></table></div>
{% endif %}
<p class="note">Last {{ region_days }} days, every process, from the shared ledger (index runs and answers).</p>
<h3>This process since it started</h3>
{% if data.process_regions %}
<div class="scroll"><table>
<thead><tr><th>Region</th><th class="n">OK</th><th class="n">Throttled</th><th class="n">Unavailable</th>
<th class="n">Errors</th><th class="n">Latency p50</th><th class="n">p95</th><th class="n">Mean</th></tr></thead>
<tbody>{% for r in data.process_regions %}
<tr class="process-region-row"><td><code>{{ r.region }}</code></td><td class="n">{{ num(r.outcomes.get("ok", 0)) }}</td>
<td class="n">{{ num(r.outcomes.get("throttled", 0)) }}</td><td class="n">{{ num(r.outcomes.get("unavailable", 0)) }}</td>
<td class="n">{{ num(r.outcomes.get("error", 0)) }}</td><td class="n">{{ bound(r.p50_seconds) }}</td>
<td class="n">{{ bound(r.p95_seconds) }}</td><td class="n">{{ seconds(r.mean_seconds if r.timed else None) }}</td></tr>
{% endfor %}</tbody></table></div>
<p class="note">From this process's Prometheus metrics (<code>/metrics</code>), pid {{ data.process.pid }}: other
workers count their own. Percentiles are the upper bounds of histogram buckets.</p>
{% else %}<p class="note">This process (pid {{ data.process.pid }}) has made no model call since it started.</p>{% endif %}
</section>

<section id="cost">
<h2>Cost this month</h2>
{{ error("spending") }}
{% if data.spending %}
<div class="scroll"><table>
<thead><tr><th>Installation</th><th>Repositories</th><th class="n">Spent</th>
{% if budget %}<th class="n">Budget</th><th>Used</th>{% endif %}</tr></thead>
<tbody>{% for row in data.spending %}
<tr class="spend-row"><td><code>{{ row.installation }}</code></td><td class="name">{{ row.repositories|join(", ") }}</td>
<td class="n">{{ usd(row.usd) }}</td>
{% if budget %}<td class="n">{{ usd(budget) }}</td><td><meter min="0" max="{{ budget }}" low="{{ budget * 0.8 }}"
high="{{ budget * 0.95 }}" optimum="0" value="{{ [row.usd, budget]|min }}"></meter>
{{ (100 * row.usd / budget)|round|int }}%</td>{% endif %}</tr>
{% endfor %}</tbody></table></div>
{% if data.spending_more %}<p class="note">… and {{ num(data.spending_more) }} more installations.</p>{% endif %}
{% elif "spending" not in data.errors %}<p class="note">Nothing spent on models this month.</p>{% endif %}
<p class="note">Calendar month in UTC, priced models only.
{% if budget %}Monthly budget per installation: {{ usd(budget) }} (<code>RAGCODE_MONTHLY_BUDGET_USD</code>).
{% else %}No monthly budget is set (<code>RAGCODE_MONTHLY_BUDGET_USD</code>).{% endif %}</p>
</section>

<section id="feedback">
<h2>Reply feedback</h2>
{{ error("feedback") }}
<p class="feedback-totals">👍 {{ num(up) }} · 👎 {{ num(down) }}{% if up + down %} · {{ (100 * up / (up + down))|round|int }}%
positive{% endif %}{% for reaction, count in others %} · <code>{{ reaction }}</code> {{ num(count) }}{% endfor %}</p>
<p class="note">Reactions on the service's replies, every repository.</p>
</section>
<footer><p class="note">Times are UTC. This page is for operators: keep <code>RAGCODE_ADMIN_TOKEN</code> secret and the
page behind your load balancer.</p></footer>
</body>
</html>
"""

_environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_template = _environment.from_string(TEMPLATE)


def render(data: StatusData) -> str:
    """The page for ``data``."""
    feedback = data.feedback
    today = data.days[-1] if data.days else DayFigures(time.strftime("%Y-%m-%d", time.gmtime(data.generated_at)))
    budget = data.settings.monthly_budget_usd

    def error(part: str) -> Markup:
        message = data.errors.get(part)
        return Markup('<p class="error">{}: {}</p>').format(part.capitalize(), message) if message else Markup()

    return _template.render(
        data=data, s=data.settings, style=Markup(STYLE), today=today, budget=budget,
        month_total=sum(row.usd for row in data.spending), up=feedback.get("+1", 0), down=feedback.get("-1", 0),
        others=[(k, v) for k, v in sorted(feedback.items()) if k not in ("+1", "-1") and v],
        runs_chart=runs_chart(data.days), cost_chart=cost_chart(data.days), regions_chart=regions_chart(data.regions),
        error=error, when=when, ago=lambda epoch: ago(epoch, data.generated_at), duration=duration, num=num, usd=usd,
        seconds=seconds, bound=bound, behind=behind, index_state=index_state, outcome_class=outcome_class,
        max_error=MAX_ERROR_CHARS, max_counted=MAX_COUNTED, region_days=REGION_DAYS,
    )


# ---------------------------------------------------------------- cells


def when(epoch: float) -> str:
    """``YYYY-MM-DD HH:MM`` in UTC."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def ago(epoch: float, now: float) -> Markup:
    """A time as "5 min ago", with the exact UTC time as its tooltip."""
    seconds = max(0.0, now - epoch)
    if seconds < 60:
        text = "just now"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min ago"
    elif seconds < 2 * 86400:
        text = f"{int(seconds // 3600)} h ago"
    else:
        text = f"{int(seconds // 86400)} days ago"
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)), when(epoch), text)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def num(value: float) -> str:
    """An integer with thousands separators."""
    return f"{int(value):,}"


def usd(value: float) -> str:
    """Dollars with cents; below ten cents, to a hundredth of a cent."""
    return f"${value:,.2f}" if value >= 0.1 or value == 0 else f"${value:.4f}"


def seconds(value: float | None) -> str:
    """A latency, or a dash when unknown."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def bound(value: float | None) -> str:
    """A histogram bucket's upper bound as a latency bound."""
    if value is None:
        return "—"
    return "above the top bucket" if math.isinf(value) else f"≤ {seconds(value)}"


def behind(row: BranchRow) -> Markup:
    """How far the index is behind the branch head, and where the head was read."""
    head = row.head
    where = {"github": "GitHub", "mirror": "mirror as last fetched"}.get(head.source, "")
    if head.gone:
        return Markup('<span class="warn">branch deleted on GitHub</span>')
    if head.commit is None:
        return Markup('<span class="note">unknown</span>')
    if head.behind == 0:
        return Markup('<span class="ok">up to date</span> <span class="note">({})</span>').format(where)
    if head.behind is None:
        text = Markup('<span class="warn">behind: head <code>{}</code></span>').format(head.commit[:12])
    else:
        text = Markup('<span class="warn">{} commit{} behind</span>').format(num(head.behind),
                                                                              "" if head.behind == 1 else "s")
    return text + Markup(' <span class="note">({})</span>').format(where)


def index_state(row: BranchRow) -> Markup:
    """Complete, indexing now, or what the last run left undone."""
    if row.running is not None:
        return Markup('<span class="warn">indexing <code>{}</code> now</span>').format(row.running.commit[:12])
    run = row.last_run
    if run is None or run.commit != row.state.commit:
        return Markup('<span class="ok">complete</span>') if run is None or run.outcome != "error" else \
            Markup('<span class="bad">last run stopped</span>')
    if run.failures:
        return Markup('<span class="bad">{} functions failed</span>').format(num(run.failures))
    if run.summaries_deferred:
        return Markup('<span class="warn">partial: {} summaries deferred</span>').format(num(run.summaries_deferred))
    return Markup('<span class="ok">complete</span>')


def outcome_class(outcome: str) -> str:
    """The colour of a run's outcome."""
    return {"success": "ok", "failure": "warn", "error": "bad"}.get(outcome, "")


# ---------------------------------------------------------------- charts


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]],
              text: Callable[[float], str]) -> Markup:
    """Stacked vertical bars, one per label; ``series``: (name, colour class, one value per label)."""
    width, height, left, right, top, bottom = 320, 150, 54, 6, 10, 22
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    peak = max(totals, default=0)
    step = (width - left - right) / max(len(labels), 1)
    scale = (height - top - bottom) / (peak or 1.0)
    parts = [_svg(width, height, title)]
    base = height - bottom
    ticks = [0.0, peak / 2, peak] if peak else [0.0]
    if len({text(tick) for tick in ticks}) < len(ticks):  # 1 run at most: no tick at a half run
        ticks = [0.0, peak]
    for value in ticks:
        y = base - value * scale
        parts.append(Markup('<line class="axis" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
                            '<text x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
            left, width - right, y, y, left - 4, y + 3, text(value)))
    if not peak:
        parts.append(Markup('<text x="{}" y="{}" text-anchor="middle">nothing yet</text>').format(
            (left + width) // 2, height // 2))
    every = math.ceil(len(labels) / 7) or 1
    for i, label in enumerate(labels):
        x, y = left + i * step + step * 0.15, base
        for name, klass, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = value * scale
            y -= h
            parts.append(Markup('<rect class="s-{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                                '<title>{}: {} {}</title></rect>').format(
                _klass(klass), x, y, step * 0.7, h, label, text(value), name))
        if (len(labels) - 1 - i) % every == 0:  # counted from the last day, which is always labelled
            parts.append(Markup('<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                left + i * step + step / 2, height - 6, label))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts) + legend(series)


def hbar_chart(title: str, rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[tuple[str, str]],
               text: Callable[[float], str]) -> Markup:
    """Stacked horizontal bars, one per row; ``series``: (name, colour class) of each value of a row."""
    width, left, right, bar, gap = 320, 78, 40, 16, 8
    height = max(len(rows), 1) * (bar + gap) + gap
    peak = max((sum(values) for _, values in rows), default=0) or 1.0
    scale = (width - left - right) / peak
    parts = [_svg(width, height, title)]
    if not rows:
        parts.append(Markup('<text x="{}" y="{}" text-anchor="middle">nothing yet</text>').format(
            width // 2, gap + bar * 0.75))
    for n, (label, values) in enumerate(rows):
        y = gap + n * (bar + gap)
        parts.append(Markup('<text x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
            left - 6, y + bar * 0.75, label[:14]))
        x = float(left)
        for (name, klass), value in zip(series, values, strict=True):
            if value <= 0:
                continue
            parts.append(Markup('<rect class="s-{}" x="{:.1f}" y="{}" width="{:.1f}" height="{}">'
                                '<title>{}: {} {}</title></rect>').format(
                _klass(klass), x, y, max(value * scale, 1.0), bar, label, text(value), name))
            x += value * scale
        parts.append(Markup('<text x="{:.1f}" y="{:.1f}">{}</text>').format(x + 4, y + bar * 0.75, text(sum(values))))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts) + legend([(name, klass, ()) for name, klass in series])


def legend(series: Sequence[tuple[str, str, Sequence[float]]]) -> Markup:
    """The colour key of a chart."""
    keys = [Markup('<i class="k-{}"></i>{}').format(_klass(klass), name) for name, klass, _ in series]
    return Markup('<div class="legend">{}</div>').format(Markup("").join(keys))


def _svg(width: int, height: int, title: str) -> Markup:
    return Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
                  'xmlns="http://www.w3.org/2000/svg"><title>{}</title>').format(width, height, title, title)


def _klass(klass: str) -> str:
    return klass if klass in CLASSES else "cost"


def _day_labels(days: Sequence[DayFigures]) -> list[str]:
    return [day.day[5:] for day in days]  # MM-DD


def runs_chart(days: Sequence[DayFigures]) -> Markup:
    """Index runs per day: clean and not clean."""
    clean = [max(0, day.runs - day.failed_runs) for day in days]
    failed = [day.failed_runs for day in days]
    chart = bar_chart(f"Index runs per day, last {len(days)} days", _day_labels(days),
                      [("clean", "ok", clean), ("failed or incomplete", "bad", failed)], num)
    return Markup("<figcaption>Index runs per day (UTC), every worker</figcaption>") + chart


def cost_chart(days: Sequence[DayFigures]) -> Markup:
    """Model spending per day."""
    chart = bar_chart(f"Model spending per day, last {len(days)} days", _day_labels(days),
                      [("USD", "cost", [day.cost_usd for day in days])], usd)
    return Markup("<figcaption>Model spending per day (UTC), index runs and answers</figcaption>") + chart


def regions_chart(regions: dict[str, Figures]) -> Markup:
    """Model calls per region: answered, throttled, failed."""
    rows = [(region, [max(0, f.calls - f.throttles - f.errors), f.throttles, f.errors])
            for region, f in regions.items()]
    chart = hbar_chart(f"Model calls by region, last {REGION_DAYS} days", rows,
                       [("answered", "ok"), ("throttled", "warn"), ("failed", "bad")], num)
    return Markup("<figcaption>Model calls by region, last {} days, every process</figcaption>").format(
        REGION_DAYS) + chart
