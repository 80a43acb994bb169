"""A stand-in OpenAI-compatible server (Ollama, vLLM, …) on 127.0.0.1: chat completions and embeddings.

It checks the bearer key, answers 429 above its concurrency limit, summarizes like the Bedrock stand-in (the
same ``standin_summary``, wrapped in a reasoning model's ``<think>`` block) and embeds with ``standin_vector``.
Requests it cannot accept are answered 400 and recorded in ``errors``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.bedrock_standin import standin_summary, standin_vector, summary_request

API_KEY = "sk-standin"
MODEL = "qwen2.5-coder:7b"
EMBED_MODEL = "nomic-embed-text"
DIMENSION = 48


class OpenAIStandin:
    """A threaded OpenAI-compatible server: chat completions and embeddings, with a limit and a key."""

    def __init__(self, latency: float = 0.005, limit: int = 1_000, dimension: int = DIMENSION,
                 context_tokens: int = 1_000_000) -> None:
        self.latency, self.limit, self.dimension = latency, limit, dimension
        self.context_tokens = context_tokens  # an embedding model's window; tokens counted as UTF-8 bytes at worst
        self.longest_input = 0
        self.deny = ""  # when set, every request gets 403 with this message (a proxy or IAM denial)
        self.answer = ""  # when set, the generated answer
        self.bodies: list[str] = []  # every request body, as sent
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # requests, ok, unauthorized, throttled and summary:<function name>
        self.inflight = 0
        self.batches: list[int] = []  # texts per embeddings request
        self.prompts: list[str] = []  # every chat request's user message
        self.embedded: list[str] = []  # every text embedded, in arrival order
        self.errors: list[str] = []  # requests the stand-in refused as malformed (a client bug if not empty)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client went away mid-request: nothing to answer
                    self.close_connection = True
                    return
                with standin.lock:
                    standin.bodies.append(raw.decode("utf-8"))
                body = json.loads(raw or b"{}")
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
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def summaries(self) -> Counter[str]:
        """Summary requests answered, by function name."""
        with self.lock:
            return Counter({key.removeprefix("summary:"): count for key, count in self.counts.items()
                            if key.startswith("summary:")})

    def handle(self, path: str, authorization: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one request: (status, JSON body)."""
        with self.lock:
            self.counts["requests"] += 1
            if authorization != f"Bearer {API_KEY}":
                self.counts["unauthorized"] += 1
                return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            if self.deny:
                return 403, {"error": {"message": self.deny, "type": "permission_error"}}
            if self.inflight >= self.limit:
                self.counts["throttled"] += 1
                return 429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
            self.inflight += 1
        try:
            time.sleep(self.latency)
            if path == "/v1/chat/completions":
                return self.chat(body)
            if path == "/v1/embeddings":
                return self.embeddings(body)
            return self.refuse(404, f"no route {path}")
        finally:
            with self.lock:
                self.inflight -= 1

    def refuse(self, status: int, message: str) -> tuple[int, dict[str, Any]]:
        """An error answer, recorded as a client bug."""
        with self.lock:
            self.errors.append(message)
        return status, {"error": {"message": message, "type": "invalid_request_error"}}

    def chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A chat completion: a summary for a summary prompt, else a code answer."""
        messages = body.get("messages")
        if body.get("model") != MODEL or body.get("temperature") != 0:
            return self.refuse(400, f"model {body.get('model')!r}, temperature {body.get('temperature')!r}")
        if not isinstance(messages, list) or [m.get("role") for m in messages] != ["system", "user"]:
            return self.refuse(400, "messages must be one system and one user message")
        system, user = (str(message.get("content", "")) for message in messages)
        korean = "한국어" in system + user
        with self.lock:
            self.prompts.append(user)
        if "<summary>" in user:
            request = summary_request(user)
            if request is None:
                return self.refuse(400, "summary prompt without a name line")
            name, doc = request
            content = f"<think>Let me read {name}.</think>\n<summary>{standin_summary(name, korean, doc)}</summary>"
            with self.lock:
                self.counts[f"summary:{name}"] += 1
        else:
            content = self.answer or "Here you go:\n\n```python\ndef generated():\n    return 42\n```"
        with self.lock:
            self.counts["ok"] += 1
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4,
                               "total_tokens": len(user) // 4 + len(content) // 4}}

    def embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Embeddings of one text or a list of texts, rows in reverse order (clients must sort by ``index``)."""
        texts = body.get("input") if isinstance(body.get("input"), list) else [body.get("input")]
        if body.get("model") != EMBED_MODEL or not all(isinstance(text, str) and text for text in texts):
            return self.refuse(400, f"embeddings of {body.get('model')!r} for {texts!r:.200}")
        tokens = max(len(text.encode("utf-8")) for text in texts)
        with self.lock:
            self.longest_input = max(self.longest_input, tokens)
        if tokens > self.context_tokens:  # vLLM's answer to an input longer than the model's window
            return 400, {"object": "error", "type": "BadRequestError", "code": 400, "message": (
                f"This model's maximum context length is {self.context_tokens} tokens. However, you requested "
                f"{tokens} tokens in the input for embedding generation. Please reduce the length of the input.")}
        with self.lock:
            self.counts["ok"] += 1
            self.batches.append(len(texts))
            self.embedded.extend(texts)
        rows = [{"object": "embedding", "index": i, "embedding": standin_vector(text, self.dimension).tolist()}
                for i, text in enumerate(texts)]
        return 200, {"object": "list", "model": body["model"], "data": rows[::-1],
                     "usage": {"prompt_tokens": sum(len(t) // 4 for t in texts), "total_tokens": 0}}
