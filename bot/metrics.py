"""Prometheus metrics shared by the service, the workers and the model clients."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter("ragcode_deliveries_total", "Webhook deliveries by event and outcome", ["event", "outcome"])
QUEUE_DEPTH = Gauge("ragcode_queue_depth", "Jobs waiting in the queue")
JOBS = Gauge("ragcode_jobs", "Jobs by state", ["state"])
LLM_CALLS = Counter("ragcode_llm_calls_total", "Model calls by region and outcome", ["region", "outcome"])
LLM_TOKENS = Counter("ragcode_llm_tokens_total", "Model tokens by region, model and direction",
                     ["region", "model", "direction"])
LLM_COST = Counter("ragcode_llm_cost_usd_total", "Model spending in USD by region and model (priced models only)",
                   ["region", "model"])
LLM_LATENCY = Histogram("ragcode_llm_call_seconds", "Model call latency by region", ["region"])
INDEX_SECONDS = Histogram(
    "ragcode_index_seconds", "Duration of indexing runs", buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600)
)
ANSWER_SECONDS = Histogram("ragcode_answer_seconds", "Duration of /ragcode answers")
GROUNDING_CHECKED = Counter("ragcode_grounding_checked_total",
                            "Paths and functions that generated answers named and that were checked against the index",
                            ["kind"])
UNGROUNDED = Counter("ragcode_ungrounded_names_total",
                     "Paths and functions that generated answers named but the index does not have (marked in replies)",
                     ["kind"])
REPLY_FEEDBACK = Counter("ragcode_reply_feedback_total", "Reactions users gave to /ragcode replies, by reaction",
                         ["reaction"])
for _reaction in ("+1", "-1"):  # shown at 0 before the first reaction
    REPLY_FEEDBACK.labels(reaction=_reaction)
