"""OpenAI-compatible provider against stand-in servers (real HTTP on 127.0.0.1); each base URL is a region."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from bot.config import Settings
from bot.documents import Document, Hit, Unit
from bot.embed.openai import OpenAIEmbedder
from bot.llm.openai import OpenAITextModel, endpoint
from tests.bedrock_standin import standin_summary, standin_vector

API_KEY = "sk-standin"
DIMENSION = 48
_NAME_LINE = re.compile(r"^(?:Name|이름): (.+)$", re.M)


class OpenAIStandin:
    """A threaded OpenAI-compatible server: chat completions and embeddings, with a limit and a key."""

    def __init__(self, latency: float = 0.005, limit: int = 1_000) -> None:
        self.latency, self.limit = latency, limit
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.inflight = 0
        self.batches: list[int] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                status, payload = standin.handle(self.path, self.headers.get("Authorization", ""), body)
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path: str, authorization: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.counts["requests"] += 1
            if authorization != f"Bearer {API_KEY}":
                self.counts["unauthorized"] += 1
                return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            if self.inflight >= self.limit:
                self.counts["throttled"] += 1
                return 429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
            self.inflight += 1
        try:
            time.sleep(self.latency)
            if path == "/v1/chat/completions":
                return 200, self.chat(body)
            if path == "/v1/embeddings":
                return 200, self.embeddings(body)
            return 404, {"error": {"message": f"no route {path}"}}
        finally:
            with self.lock:
                self.inflight -= 1

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        system, user = (message["content"] for message in body["messages"])
        assert body["model"] == "qwen2.5-coder:7b" and body["temperature"] == 0
        korean = "한국어" in system + user
        if "<summary>" in user:
            name = _NAME_LINE.search(user).group(1)
            content = f"<think>Let me read {name}.</think>\n<summary>{standin_summary(name, korean)}</summary>"
            with self.lock:
                self.counts[f"summary:{name}"] += 1
        else:
            content = "Here you go:\n\n```python\ndef generated():\n    return 42\n```"
        with self.lock:
            self.counts["ok"] += 1
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4,
                          "total_tokens": len(user) // 4 + len(content) // 4}}

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        with self.lock:
            self.counts["ok"] += 1
            self.batches.append(len(texts))
        rows = [{"object": "embedding", "index": i, "embedding": standin_vector(text, DIMENSION).tolist()}
                for i, text in enumerate(texts)]
        return {"object": "list", "model": body["model"], "data": rows[::-1],  # order is by "index", not position
                "usage": {"prompt_tokens": sum(len(t) // 4 for t in texts), "total_tokens": 0}}


@pytest.fixture
def servers() -> Iterator[list[OpenAIStandin]]:
    started = [OpenAIStandin(), OpenAIStandin()]
    yield started
    for server in started:
        server.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def settings(bases: list[str], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm": "openai", "embedder": "openai", "openai_base_url": tuple(bases), "openai_model": "qwen2.5-coder:7b",
        "openai_embed_model": "nomic-embed-text", "openai_api_key": API_KEY, "bedrock_cooldown": 30.0,
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
    assert set(usage) == set(bases) and sum(u["output_tokens"] for u in usage.values()) > 0


def test_throttling_server_sheds_load(servers: list[OpenAIStandin]) -> None:
    servers[0].limit = 1
    servers[0].latency = servers[1].latency = 0.02
    model = OpenAITextModel(settings([s.url for s in servers], openai_concurrency=6))
    work = units(60)
    result = model.summarize(work, "en")
    assert len(result.summaries) == 60 and not result.failed
    assert servers[0].counts["throttled"] > 0
    assert servers[0].counts["ok"] < servers[1].counts["ok"]
    assert model.usage()[servers[0].url]["throttles"] == servers[0].counts["throttled"]


def test_unreachable_server_fails_over(servers: list[OpenAIStandin]) -> None:
    dead = closed_port_url()
    model = OpenAITextModel(settings([dead, servers[0].url]))
    result = model.summarize(units(20), "en")
    assert len(result.summaries) == 20 and not result.failed
    assert 1 <= model.usage()[dead]["errors"] <= 4
    assert servers[0].counts["ok"] == 20


def test_wrong_key_is_reported_per_unit(servers: list[OpenAIStandin]) -> None:
    model = OpenAITextModel(settings([servers[0].url], openai_api_key="sk-wrong"))
    work = units(2)
    result = model.summarize(work, "ko")
    assert set(result.failed) == {u.hash for u in work}
    assert all("HTTP 401: Incorrect API key provided" in error for error in result.failed.values())


def test_generate_through_openai(servers: list[OpenAIStandin]) -> None:
    model = OpenAITextModel(settings([servers[0].url]))
    doc = Document(id="1", repo="acme/app", branch="main", path="a.py", name="load", kind="function",
                   language="python", start_line=1, end_line=2, code="def load():\n    pass\n",
                   content_hash="x", summary="loads")
    answer = model.generate("write a loader", [Hit(doc, 0.9)], "en", "acme/app")
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
