"""OpenAI-compatible provider against stand-in servers (real HTTP on 127.0.0.1); each base URL is a region."""

from __future__ import annotations

import random
import socket
import string
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import generate_latest

from bot.commands.answer import answer
from bot.config import Settings
from bot.documents import Document, Hit, Repository, Unit
from bot.embed.openai import OpenAIEmbedder
from bot.indexer.pipeline import index_branch
from bot.llm.openai import OpenAITextModel, endpoint
from bot.runtime import Runtime
from tests.bedrock_standin import standin_summary, standin_vector
from tests.openai_standin import API_KEY, DIMENSION, EMBED_MODEL, MODEL, OpenAIStandin

APP = Repository(101, "acme/app", 1)


@pytest.fixture
def servers() -> Iterator[list[OpenAIStandin]]:
    started = [OpenAIStandin(), OpenAIStandin()]
    yield started
    for server in started:
        server.close()
        assert server.errors == [], "the client sent requests the stand-in refuses"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def settings(bases: list[str], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm": "openai", "embedder": "openai", "openai_base_url": tuple(bases), "openai_model": MODEL,
        "openai_embed_model": EMBED_MODEL, "openai_api_key": API_KEY, "bedrock_cooldown": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


def units(count: int) -> list[Unit]:
    return [Unit("src/a.py", "python", "function", f"task_{i}", 1, 2, f"def task_{i}():\n    return {i}\n")
            for i in range(count)]


def test_endpoint_accepts_base_urls_with_or_without_v1() -> None:
    assert endpoint("http://localhost:11434", "embeddings") == "http://localhost:11434/v1/embeddings"
    assert endpoint("http://localhost:11434/v1/", "chat/completions") == "http://localhost:11434/v1/chat/completions"


def test_summaries_spread_over_base_urls_with_bearer_key(servers: list[OpenAIStandin]) -> None:
    bases = [servers[0].url, servers[1].url + "/v1"]
    model = OpenAITextModel(settings(bases))
    work = units(40)
    result = model.summarize(work + work[:5], "ko")
    assert model.name == "openai:qwen2.5-coder:7b"
    assert {u.hash: standin_summary(u.name, korean=True) for u in work} == result.summaries  # <think> removed
    assert servers[0].counts["ok"] > 0 and servers[1].counts["ok"] > 0
    assert servers[0].counts["ok"] + servers[1].counts["ok"] == 40  # duplicates not sent again
    assert servers[0].counts["unauthorized"] == servers[1].counts["unauthorized"] == 0
    usage = model.usage()
    assert set(usage) == {"openai-1", "openai-2"} and sum(u["output_tokens"] for u in usage.values()) > 0


def test_throttling_server_sheds_load(servers: list[OpenAIStandin]) -> None:
    servers[0].limit = 1
    servers[0].latency = servers[1].latency = 0.02
    model = OpenAITextModel(settings([s.url for s in servers], openai_concurrency=6))
    work = units(60)
    result = model.summarize(work, "en")
    assert len(result.summaries) == 60 and not result.failed
    assert servers[0].counts["throttled"] > 0
    assert servers[0].counts["ok"] < servers[1].counts["ok"]
    assert model.usage()["openai-1"]["throttles"] == servers[0].counts["throttled"]


def test_unreachable_server_fails_over(servers: list[OpenAIStandin]) -> None:
    dead = closed_port_url()
    model = OpenAITextModel(settings([dead, servers[0].url]))
    result = model.summarize(units(20), "en")
    assert len(result.summaries) == 20 and not result.failed
    assert 1 <= model.usage()["openai-1"]["errors"] <= 4
    assert servers[0].counts["ok"] == 20


def test_wrong_key_is_reported_per_unit(servers: list[OpenAIStandin]) -> None:
    model = OpenAITextModel(settings([servers[0].url], openai_api_key="sk-wrong"))
    work = units(2)
    result = model.summarize(work, "ko")
    assert set(result.failed) == {u.hash for u in work}
    assert all("HTTP 401: Incorrect API key provided" in error for error in result.failed.values())


def test_generate_through_openai(servers: list[OpenAIStandin]) -> None:
    model = OpenAITextModel(settings([servers[0].url]))
    doc = Document(id="1", repo_id=101, branch="main", path="a.py", name="load", kind="function",
                   language="python", start_line=1, end_line=2, code="def load():\n    pass\n",
                   content_hash="x", summary="loads")
    answer = model.generate("write a loader", [Hit(doc, 0.9)], "en", Repository(101, "acme/app", 1))
    assert answer.llm == "openai:qwen2.5-coder:7b"
    assert answer.markdown.startswith("Here you go:") and "def generated()" in answer.markdown


def test_embeddings_discover_dimension_normalize_and_keep_order(servers: list[OpenAIStandin]) -> None:
    embedder = OpenAIEmbedder(settings([s.url for s in servers]))
    assert embedder.name == "openai:nomic-embed-text"
    assert sum(s.counts["requests"] for s in servers) == 0  # nothing sent at construction
    assert embedder.dimension == DIMENSION  # discovered by a one-text probe
    assert sum(s.counts["requests"] for s in servers) == 1
    texts = [f"text number_{i}" for i in range(70)]  # distinct terms: distinct bag-of-words vectors
    vectors = embedder.embed_documents(texts + ["", texts[0]])
    assert vectors.shape == (72, DIMENSION) and vectors.dtype == np.float32
    for row in (0, 33, 69):
        expected = standin_vector(texts[row], DIMENSION)
        assert np.allclose(vectors[row], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors[:70], axis=1), 1.0, atol=1e-5) and not vectors[70].any()
    assert sorted(servers[0].batches + servers[1].batches) == [1, 6, 32, 32]  # probe, then 70 texts in batches
    assert embedder.embed_query("text number_5").shape == (DIMENSION,)


def test_embedder_dimension_from_first_response(servers: list[OpenAIStandin]) -> None:
    embedder = OpenAIEmbedder(settings([servers[0].url]))
    assert embedder.embed_documents(["a", "b"]).shape == (2, DIMENSION)
    assert embedder.dimension == DIMENSION
    assert servers[0].batches == [2]  # no probe needed


def test_embedding_inputs_are_cut_to_the_configured_bound() -> None:
    server = OpenAIStandin(context_tokens=512)
    try:
        hostile = "장바구니 총액을 계산한다 " * 5_000
        embedder = OpenAIEmbedder(settings([server.url], openai_embed_max_bytes=512, bedrock_max_attempts=1))
        vectors = embedder.embed_documents([hostile, "short text"])
        assert vectors.shape == (2, DIMENSION) and server.longest_input <= 512
        cut = hostile.encode("utf-8")[:512].decode("utf-8", "ignore")
        expected = standin_vector(cut, DIMENSION)
        assert np.allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-6)  # the same prefix each time
        assert np.allclose(embedder.embed_query(hostile), vectors[0])
        unbounded = OpenAIEmbedder(settings([server.url], openai_embed_max_bytes=1_000_000, bedrock_max_attempts=1))
        with pytest.raises(RuntimeError, match="maximum context length is 512 tokens"):
            unbounded.embed_documents([hostile])
    finally:
        server.close()


def test_metrics_and_usage_name_servers_by_position_never_by_url(servers: list[OpenAIStandin]) -> None:
    model = OpenAITextModel(settings([s.url for s in servers]))
    model.summarize(units(6), "en")
    text = generate_latest().decode()
    assert 'region="openai-1"' in text and 'region="openai-2"' in text
    for server in servers:
        assert server.url.removeprefix("http://") not in text  # internal addresses stay out of /metrics
    assert set(model.usage()) == {"openai-1", "openai-2"}  # the check run's table of calls per region


def test_no_secret_reaches_a_prompt_the_store_or_a_reply(servers: list[OpenAIStandin], make_repo, tmp_path) -> None:
    rng = random.Random(11)

    def fake(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(rng.choice(alphabet) for _ in range(length))

    stripe, openai_key, password = "sk_" + "live_" + fake(24), "sk-" + "proj-" + fake(48), fake(16) + "%!"
    django, webhook = fake(50), "https://hooks.slack.com/services/T" + fake(9, string.ascii_uppercase) + "/B" + fake(9) + "/" + fake(24)
    repo = make_repo()
    repo.write("app/pay.py", f'STRIPE_KEY = "{stripe}"\n\n\ndef charge(amount):\n    """Charge the card."""\n'
                             "    return stripe.Charge.create(amount=amount, api_key=STRIPE_KEY)\n")
    repo.write("app/ai.py", f'def client():\n    """Build the model client."""\n    return OpenAI(api_key="{openai_key}")\n')
    repo.write("deploy/app.yaml", f"database:\n  user: shop\n  password: {password}\nalerts: {webhook}\n")
    repo.write("mysite/settings/production.py", f'SECRET_KEY = "{django}"\nDEBUG = False\n')
    sha = repo.commit()
    runtime = Runtime(settings([servers[0].url], home=tmp_path / "home", min_score=0.0))
    try:
        report = index_branch(runtime, repo.repo, APP, "main", sha)
        servers[0].answer = f"Like this:\n\n```python\nSTRIPE_KEY = '{stripe}'\n```\n\nAlerts go to {webhook}"
        reply = answer(runtime, APP, "main", "charge a card", html_url="https://github.com/acme/app")
        stored = runtime.store.documents(APP.id, "main", [ref.id for ref in runtime.store.refs(APP.id, "main")])
    finally:
        runtime.close()
    assert {"path": "mysite/settings/production.py", "reason": "deployment configuration"} in report.files_skipped
    assert report.secrets_redacted >= 4 and stored and reply.hits and servers[0].counts["ok"] > 0
    sent = "\n".join(servers[0].bodies)
    assert "Charge the card" in sent and "STRIPE_KEY" in sent and "[REDACTED:" in reply.markdown
    for secret in (stripe, openai_key, password, django, webhook):
        assert secret not in sent, "a prompt or an embedding request"
        assert all(secret not in document.code + document.summary for document in stored), "the store"
        assert secret not in reply.markdown, "the reply"
