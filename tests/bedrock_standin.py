"""A stand-in Amazon Bedrock Runtime on 127.0.0.1 for tests and benchmarks.

Requests are checked against the real service model (``shared/data/bedrock-runtime/service-2.json``):
the operation is found by method and URI, the SigV4 credential scope names the region and the signing name,
and the parameters pass botocore's ``ParamValidator`` against the operation's input shape. Responses reuse the
structure of real recorded responses (Converse ``output/stopReason/usage/metrics``, Titan v2
``embedding/embeddingsByType/inputTextTokenCount``, Cohere Embed v3 ``embeddings/id/response_type/texts`` with
the ``x-amzn-bedrock-input-token-count`` header, the real 400 body for an invalid model id). The Cohere recording
is of ``cohere.embed-english-v3``; ``cohere.embed-multilingual-v3`` answers in the same format, and the request
limits checked here (1-96 texts of at most 2,048 characters, ``input_type``, ``truncate``, ``embedding_types``,
512 tokens a text) are those of AWS's Cohere Embed v3 documentation.
Each region has a latency, a concurrency limit (429 ThrottlingException above it) and can be down (503).
Summaries are deterministic: derived from the ``Name:``/``이름:`` line of the prompt and the docstring of the code
in it, in Korean when asked, three sentences long like a real model's.

Tokens are counted like a BPE tokenizer would, not by a flat ratio (see ``count_tokens``), so that estimates
made by ragcode (which uses per-script ratios of its own) are checked against an independent count.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import yaml
from botocore.model import OperationModel, ServiceModel
from botocore.validate import ParamValidator

from bot.text import analyze
from tests.shared_data import DATA as SHARED_DATA

DATA = SHARED_DATA / "bedrock-runtime"
CASSETTES = DATA / "examples" / "pydantic-ai" / "tests"
SUPPORTED = ("Converse", "InvokeModel")
TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_MAX_CHARS = 50_000
COHERE_V3 = ("cohere.embed-multilingual-v3", "cohere.embed-english-v3")
COHERE_MAX_TEXTS = 96
COHERE_MAX_CHARS = 2_048
COHERE_MAX_TOKENS = 512
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
COHERE_EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
CONVERSE_FRAMING_TOKENS = 8  # a system and a user message (Claude Sonnet 4.5 via Converse: 21 tokens for 13 of text)
INVALID_MODEL = "us.does-not-exist-model-v1:0"  # the model id of the recorded 400 response
ERROR_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_NAME_LINE = re.compile(r"^(?:Name|이름): (.+)$", re.M)
_REFERENCE_LINE = re.compile(r"^\[\d+\] \S+ \([^)]*\) — (.+)$", re.M)
_FENCED = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
_COMMENTED = re.compile(r"^(?:The commented lines:|댓글이 달린 줄:)\n(`{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
_DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'|/\*\*?(.*?)\*/', re.S)


def _recorded(relative: str) -> dict[str, Any]:
    """The first interaction of a recorded cassette."""
    return yaml.safe_load((CASSETTES / relative).read_text(encoding="utf-8"))["interactions"][0]


SERVICE = ServiceModel(json.loads((DATA / "service-2.json").read_text(encoding="utf-8")), "bedrock-runtime")
CONVERSE_TEMPLATE = _recorded("models/cassettes/test_bedrock/test_bedrock_model.yaml")["response"]["parsed_body"]
TITAN_TEMPLATE = _recorded("cassettes/test_embeddings/TestBedrock.test_titan_v2_minimal.yaml")["response"]
COHERE_TEMPLATE = _recorded("cassettes/test_embeddings/TestBedrock.test_cohere_v3_minimal.yaml")["response"]
INVALID_MODEL_BODY = _recorded("models/cassettes/test_bedrock/test_bedrock_error.yaml")["response"]["parsed_body"]


def _route(operation: OperationModel) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\+?\}", r"(?P<\1>[^/]+)", operation.http["requestUri"].split("?")[0])
    return re.compile(f"^{pattern}$")


ROUTES = [(SERVICE.operation_model(name), _route(SERVICE.operation_model(name))) for name in SERVICE.operation_names]


# Pieces like a BPE pre-tokenizer: a word with its leading space, up to three digits, a run of Hangul, a run of
# whitespace, a run of other characters.
_PIECE = re.compile(r" ?[A-Za-z_]+| ?[0-9]{1,3}| ?[\uac00-\ud7a3]+|\s+| ?[^\sA-Za-z0-9_\uac00-\ud7a3]+")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` the way the stand-in bills them, mimicking a BPE tokenizer piece by piece.

    A word of up to six letters is one token, longer words one more per four letters; a number one token per
    three digits; a Hangul syllable 1⅓ tokens (Korean costs more tokens than characters); whitespace one token
    per four characters; ASCII symbols one per two, other characters one each. On the recorded real calls in
    ``shared/data/bedrock-runtime/examples`` this gives 7 and 13 input tokens where Nova reported 7 and 13, and
    63, 31 and 100 output tokens where Claude Sonnet 4.5, Nova Micro and Claude 3.7 Sonnet reported 69, 30 and 106.
    """
    tokens = 0
    for piece in _PIECE.findall(text):
        core = piece[1:] if piece[0] == " " and len(piece) > 1 else piece
        first = core[0]
        if first.isascii() and (first.isalpha() or first == "_"):
            tokens += 1 + max(0, len(core) - 6) // 4
        elif first.isascii() and first.isdigit():
            tokens += 1
        elif "\uac00" <= first <= "\ud7a3":
            tokens += len(core) + len(core) // 3
        elif core.isspace():
            tokens += (len(core) + 3) // 4
        else:
            symbols = sum(1 for char in core if char.isascii())
            tokens += (symbols + 1) // 2 + len(core) - symbols
    return tokens


def standin_summary(name: str, korean: bool, doc: str = "") -> str:
    """The summary text the stand-in gives for function ``name`` whose code documents itself with ``doc``: three
    sentences, the middle one the docstring, so summaries carry meaning at a real length. A Korean docstring is left
    out of an English summary (a model would translate it, at English lengths, not quote it)."""
    if not korean and any("\uac00" <= char <= "\ud7a3" for char in doc):
        doc = ""
    if korean:
        middle = f"설명: {doc}" if doc else "인자가 올바르지 않으면 예외를 발생시키고 더 진행하지 않습니다."
        return (f"`{name}` 함수는 전달받은 인자를 검사한 뒤 요청을 처리하고, 그 결과를 호출한 쪽에 돌려줍니다. {middle} "
                "파일, 네트워크, 데이터베이스 같은 외부 상태는 바꾸지 않으므로 부수 효과가 없습니다.")
    middle = doc if doc else "If an argument is invalid it raises an exception and stops there."
    return (f"`{name}` checks the arguments it receives, processes the request and returns the result to its "
            f"caller. {middle} It changes no outside state such as files, the network or a database, so it has no "
            "side effects.")


def summary_request(prompt: str) -> tuple[str, str] | None:
    """``(function name, its docstring)`` of a summary prompt; the docstring is "" when the code has none."""
    found = _NAME_LINE.search(prompt)
    if not found:
        return None
    blocks = _FENCED.findall(prompt)
    code = blocks[-1][1] if blocks else ""  # the unit's own code comes last, after any enclosing context
    documented = _DOCSTRING.search(code)
    text = next((part for part in documented.groups() if part), "") if documented else ""
    doc = " ".join(line.strip().lstrip("*").strip() for line in text.splitlines()).strip()
    return found.group(1).strip(), " ".join(doc.split())


def standin_suggestion(lines: str) -> str:
    """The stand-in's replacement for commented lines: ``def`` becomes ``async def`` (else the last line gets a
    comment), in a ```suggestion block fenced like a careless model would: three backticks unless a line of the
    code itself is a fence."""
    changed = re.sub(r"^(\s*)def ", r"\1async def ", lines.rstrip("\n"), flags=re.M)
    if changed == lines.rstrip("\n"):
        changed += "  # reviewed"
    longest = max((len(line.strip()) for line in changed.split("\n") if line.strip() and set(line.strip()) == {"`"}),
                  default=2)
    marker = "`" * max(3, longest + 1)
    return f"{marker}suggestion\n{changed}\n{marker}"


def standin_vector(text: str, dimension: int) -> np.ndarray:
    """The deterministic (unnormalized) embedding the stand-in gives for ``text``: a hashed bag of words.

    Each term of ``bot.text.analyze`` (Korean morphemes, identifier parts) adds ``1 + log(count)`` times its
    own pseudo-random pattern of signs over the ``dimension`` buckets, seeded by the term's hash (signed
    feature hashing into every bucket: a random projection of the bag of words). Texts sharing terms point
    the same way; unrelated ones get small, normally spread cosines (about 1/sqrt(dimension)) as with dense
    models rather than spurious one-bucket collisions. Relevant pairs score far lower (cosine ~0.2-0.5) than
    with the bundled model, like Titan's. A text without terms gets one pseudo-term: itself.
    """
    vector = np.zeros(dimension)
    for term, count in Counter(analyze(text) or [text]).items():
        vector += (1.0 + math.log(count)) * _signs(term, dimension)
    return vector * 3.0


@lru_cache(maxsize=65_536)
def _signs(term: str, dimension: int) -> np.ndarray:
    """The term's pseudo-random pattern of ±1 over ``dimension`` buckets (kept: summaries share most terms, and the
    stand-in's own work must not slow the client it measures)."""
    seed = int.from_bytes(hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    signs = np.random.default_rng(seed).integers(0, 2, dimension) * 2.0 - 1.0
    signs.flags.writeable = False
    return signs


def cohere_vector(text: str, input_type: str) -> np.ndarray:
    """The unit vector the stand-in's Cohere model gives for ``text`` embedded as ``input_type``.

    The input type is a marker the model reads first: a query and a document of the same text are close, not equal.
    """
    vector = standin_vector(text, 1024) + 0.1 * standin_vector(f"{input_type}\0{text}", 1024)
    return vector / np.linalg.norm(vector)


@dataclass
class RegionConfig:
    """How one region behaves."""

    latency: float = 0.005
    limit: int = 1_000  # requests in flight above this get 429 ThrottlingException
    down: bool = False  # every request gets 503 ServiceUnavailableException
    # Bedrock's quotas are per model: embedding models (InvokeModel) get their own latency and limit when set
    embed_latency: float | None = None
    embed_limit: int | None = None


@dataclass
class RegionStats:
    """What one region saw."""

    requests: int = 0
    ok: int = 0
    throttled: int = 0
    unavailable: int = 0
    rejected: int = 0
    inflight: int = 0
    max_inflight: int = 0
    embed_inflight: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    summarized: list[str] = field(default_factory=list)  # function names, in answer order
    embedded: list[str] = field(default_factory=list)  # texts embedded by Cohere, in request order
    batches: list[int] = field(default_factory=list)  # texts per Cohere request


class _Reply(Exception):
    def __init__(self, status: int, body: dict[str, Any], error_type: str = "") -> None:
        super().__init__(error_type or status)
        self.status, self.body, self.error_type = status, body, error_type


class BedrockStandin:
    """Threaded HTTP server that acts as bedrock-runtime in several regions; use as a context manager."""

    def __init__(self, regions: dict[str, RegionConfig], reject_names: set[str] | None = None,
                 short_answers: bool = False) -> None:
        self.regions = regions
        self.reject_names = reject_names or set()  # functions whose prompt gets a 400 ValidationException
        self.short_answers = short_answers  # a faulty model: Cohere answers one embedding fewer than asked for
        self.stats = {name: RegionStats() for name in regions}
        self.errors: list[str] = []  # requests that failed validation (a client bug if not empty)
        self.prompts: list[str] = []  # the user message of every Converse request served
        self.answer = ""  # when set, the generated answer (a summary request still gets its summary)
        self.embedded: list[str] = []  # every text embedded, in answer order
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the client went away mid-request (a killed worker): nothing to answer
                    self.close_connection = True
                    return
                try:
                    status, payload, headers = standin._handle("POST", self.path, dict(self.headers), body)
                except _Reply as reply:
                    status, payload = reply.status, reply.body
                    headers = {"x-amzn-ErrorType": reply.error_type + ERROR_NAMESPACE} if reply.error_type else {}
                except Exception as error:  # a stand-in bug: answer like the service would, and keep the trace
                    with standin._lock:
                        standin.errors.append(f"stand-in error: {error!r}")
                    status, payload = 500, {"message": repr(error)}
                    headers = {"x-amzn-ErrorType": "InternalServerException" + ERROR_NAMESPACE}
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_POST  # noqa: N815 - routed (and refused) by the service model

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Endpoint URL for ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BedrockStandin:
        analyze("한국어")  # its Korean analyzer loads before serving, as a running service's models have
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def total(self, attribute: str) -> int:
        """Sum of one RegionStats counter over all regions."""
        with self._lock:
            return sum(getattr(stats, attribute) for stats in self.stats.values())

    def summarized(self) -> list[str]:
        """Every function name summarized successfully, over all regions."""
        with self._lock:
            return [name for stats in self.stats.values() for name in stats.summarized]

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        region = self._region(headers)
        operation, params = self._parse(method, raw_path, headers, body)
        config = self.regions[region]
        stats = self.stats[region]
        with self._lock:
            stats.requests += 1
            if params["modelId"] == INVALID_MODEL:
                stats.rejected += 1
                raise _Reply(400, copy.deepcopy(INVALID_MODEL_BODY), "ValidationException")
            if config.down:
                stats.unavailable += 1
                raise _Reply(503, {"message": "Bedrock is unable to process your request."},
                             "ServiceUnavailableException")
            embedding = operation.name != "Converse" and config.embed_limit is not None
            if embedding:
                if stats.embed_inflight >= (config.embed_limit or 0):
                    stats.throttled += 1
                    raise _Reply(429, {"message": "Too many requests, please wait before trying again."},
                                 "ThrottlingException")
                stats.embed_inflight += 1
            elif stats.inflight >= config.limit:
                stats.throttled += 1
                raise _Reply(429, {"message": "Too many requests, please wait before trying again."},
                             "ThrottlingException")
            else:
                stats.inflight += 1
                stats.max_inflight = max(stats.max_inflight, stats.inflight)
        try:
            latency = config.latency
            if operation.name != "Converse" and config.embed_latency is not None:
                latency = config.embed_latency
            time.sleep(latency)
            if operation.name == "Converse":
                return self._converse(region, params, config)
            return self._invoke(region, params, config)
        except _Reply:
            with self._lock:
                stats.rejected += 1
            raise
        finally:
            with self._lock:  # released before the answer is written: the client may send again at once
                if embedding:
                    stats.embed_inflight -= 1
                else:
                    stats.inflight -= 1

    def _fail(self, message: str) -> _Reply:
        with self._lock:
            self.errors.append(message)
        return _Reply(400, {"message": message}, "ValidationException")

    def _region(self, headers: dict[str, str]) -> str:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        match = _CREDENTIAL.search(authorization)
        if not match:
            raise _Reply(403, {"message": "Missing Authentication Token"}, "AccessDeniedException")
        _date, region, service = match.groups()
        if service != SERVICE.signing_name:
            raise self._fail(f"credential scope names service {service!r}, not {SERVICE.signing_name!r}")
        if region not in self.regions:
            raise self._fail(f"unknown region {region!r}")
        return region

    def _parse(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[OperationModel, dict]:
        path = urlsplit(raw_path).path
        for operation, route in ROUTES:
            match = route.match(path)
            if match and operation.http["method"] == method:
                break
        else:
            raise self._fail(f"no operation for {method} {path}")
        if operation.name not in SUPPORTED:
            raise self._fail(f"{operation.name} is not served by the stand-in")
        params: dict[str, Any] = {name: unquote(value) for name, value in match.groupdict().items()}
        lowered = {k.lower(): v for k, v in headers.items()}
        for name, member in operation.input_shape.members.items():
            if member.serialization.get("location") == "header":
                value = lowered.get(member.serialization.get("locationName", name).lower())
                if value is not None:
                    params[name] = value
        if operation.name == "InvokeModel":
            params["body"] = body
        else:
            try:
                params.update(json.loads(body or b"{}"))
            except ValueError:
                raise self._fail("body is not JSON") from None
        report = ParamValidator().validate(params, operation.input_shape)
        if report.has_errors():
            raise self._fail(report.generate_report())
        return operation, params

    def _converse(self, region: str, params: dict[str, Any], config: RegionConfig) -> tuple[int, Any, dict]:
        if not params.get("messages"):  # optional in the model (for prompt resources), required for a model id
            raise self._fail("Converse without messages")
        user = "".join(block.get("text", "") for m in params["messages"] for block in m["content"])
        system = "".join(block.get("text", "") for block in params.get("system", []))
        korean = "한국어" in system + user
        with self._lock:
            self.prompts.append(user)
        if "<summary>" in user:
            request = summary_request(user)
            if request is None:
                raise self._fail("summary prompt without a name line")
            name, doc = request
            if name in self.reject_names:
                raise _Reply(400, {"message": "Input is too long for requested model."}, "ValidationException")
            preamble = "다음은 요약입니다:" if korean else "Here is the summary:"
            text = f"{preamble}\n<summary>{standin_summary(name, korean, doc)}</summary>"
        else:
            name = ""
            used = ", ".join(_REFERENCE_LINE.findall(user)) or "-"
            intro = f"참고한 함수: {used}" if korean else f"Functions used: {used}"
            commented = _COMMENTED.search(user)
            if self.answer:
                text = self.answer
            elif commented and "`suggestion`" in user:
                text = f"{intro}\n\n{standin_suggestion(commented.group(2))}\n\n" + (
                    "댓글이 달린 줄을 비동기로 바꿨습니다." if korean else "The commented lines are now async.")
            else:
                text = f"{intro}\n\n```python\ndef generated():\n    return 42\n```\n"
        inputs, outputs = count_tokens(system) + count_tokens(user) + CONVERSE_FRAMING_TOKENS, count_tokens(text)
        with self._lock:
            stats = self.stats[region]
            stats.ok += 1
            stats.input_tokens += inputs
            stats.output_tokens += outputs
            if name:
                stats.summarized.append(name)
        response = copy.deepcopy(CONVERSE_TEMPLATE)
        response["output"]["message"]["content"] = [{"text": text}]
        response["usage"] = {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs}
        response["metrics"]["latencyMs"] = int(config.latency * 1000)
        response["stopReason"] = "end_turn"
        return 200, response, {}

    def _invoke(self, region: str, params: dict[str, Any], config: RegionConfig) -> tuple[int, Any, dict]:
        if params["modelId"] not in (TITAN_V2, *COHERE_V3):
            raise self._fail(f"the stand-in only embeds with {TITAN_V2} and {', '.join(COHERE_V3)}")
        if params.get("contentType", "application/json") != "application/json":
            raise self._fail("contentType must be application/json")
        try:
            request = json.loads(params["body"])
        except ValueError:
            raise self._fail("Malformed input request: body is not JSON") from None
        if not isinstance(request, dict):
            raise self._fail("Malformed input request: body is not a JSON object")
        if params["modelId"] in COHERE_V3:
            return self._cohere(region, request, config)
        unknown = set(request) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
        text = request.get("inputText")
        dimension = request.get("dimensions", 1024)
        if unknown or not isinstance(text, str) or not text or dimension not in (256, 512, 1024):
            raise self._fail(f"Malformed input request: {sorted(unknown)} {dimension!r}")
        if len(text) > TITAN_MAX_CHARS:  # Titan v2's documented input limit, with the service's own message
            raise self._fail(f"Malformed input request: expected maxLength: {TITAN_MAX_CHARS}, actual: {len(text)}, "
                             "please reformat your input and try again.")
        vector = standin_vector(text, dimension)
        if request.get("normalize", True):
            vector = vector / np.linalg.norm(vector)
        tokens = max(1, count_tokens(text))
        with self._lock:
            stats = self.stats[region]
            stats.ok += 1
            stats.input_tokens += tokens
            self.embedded.append(text)
        response = {key: copy.deepcopy(value) for key, value in TITAN_TEMPLATE["parsed_body"].items()
                    if key not in ("embedding", "embeddingsByType")}
        response["embedding"] = vector.tolist()
        response["embeddingsByType"] = {"float": vector.tolist()}
        response["inputTextTokenCount"] = tokens
        headers = {
            "x-amzn-bedrock-input-token-count": str(tokens),
            "x-amzn-bedrock-invocation-latency": str(int(config.latency * 1000)),
        }
        return 200, response, headers

    def _cohere(self, region: str, request: dict[str, Any], config: RegionConfig) -> tuple[int, Any, dict]:
        """Cohere Embed v3: the documented request (texts, input_type, truncate, embedding_types) and response."""
        unknown = set(request) - {"texts", "input_type", "truncate", "embedding_types"}  # images: not served here
        texts = request.get("texts")
        if unknown:
            raise self._fail(f"Malformed input request: extraneous key {sorted(unknown)[0]!r} is not permitted")
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise self._fail("Malformed input request: texts must be an array of strings")
        if not 1 <= len(texts) <= COHERE_MAX_TEXTS:
            raise self._fail(f"Malformed input request: expected between 1 and {COHERE_MAX_TEXTS} texts, "
                             f"got {len(texts)}")
        too_long = [len(text) for text in texts if len(text) > COHERE_MAX_CHARS]
        if too_long:
            raise self._fail(f"Malformed input request: expected maxLength: {COHERE_MAX_CHARS}, actual: "
                             f"{too_long[0]}, please reformat your input and try again.")
        input_type = request.get("input_type")
        if input_type not in COHERE_INPUT_TYPES:
            raise self._fail(f"Malformed input request: input_type must be one of {', '.join(COHERE_INPUT_TYPES)}")
        truncate = request.get("truncate", "NONE")
        if truncate not in ("NONE", "START", "END"):
            raise self._fail("Malformed input request: truncate must be NONE, START or END")
        kinds = request.get("embedding_types")
        if kinds is not None and (not isinstance(kinds, list) or not kinds
                                  or not set(kinds) <= set(COHERE_EMBEDDING_TYPES)):
            raise self._fail(f"Malformed input request: embedding_types must be some of {COHERE_EMBEDDING_TYPES}")
        if kinds is not None and kinds != ["float"]:
            raise self._fail("the stand-in answers float embeddings only")
        counts = [count_tokens(text) for text in texts]
        if truncate == "NONE" and max(counts) > COHERE_MAX_TOKENS:
            raise _Reply(400, {"message": f"Input text of {max(counts)} tokens exceeds the maximum of "
                                          f"{COHERE_MAX_TOKENS}; use truncate START or END."}, "ValidationException")
        tokens = sum(min(count, COHERE_MAX_TOKENS) for count in counts)
        kept = [_token_window(text, truncate) if count > COHERE_MAX_TOKENS else text
                for text, count in zip(texts, counts, strict=True)]
        floats = [cohere_vector(text, input_type).tolist() for text in kept][: -1 if self.short_answers else None]
        with self._lock:
            stats = self.stats[region]
            stats.ok += 1
            stats.input_tokens += tokens
            stats.embedded.extend(texts)
            stats.batches.append(len(texts))
        response = copy.deepcopy(COHERE_TEMPLATE["parsed_body"])
        if kinds is None:
            response["embeddings"], response["response_type"] = floats, "embeddings_floats"
        else:
            response["embeddings"], response["response_type"] = {"float": floats}, "embeddings_by_type"
        response["id"] = str(uuid.uuid4())
        response["texts"] = [text.lower() for text in texts]  # the recorded response echoes them lower-cased
        headers = {
            "x-amzn-bedrock-input-token-count": str(tokens),
            "x-amzn-bedrock-invocation-latency": str(int(config.latency * 1000)),
        }
        return 200, response, headers


def _token_window(text: str, truncate: str) -> str:
    """The longest start (``END``: the end is dropped) or end (``START``) of ``text`` within 512 tokens."""
    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        part = text[:middle] if truncate == "END" else text[-middle:]
        if count_tokens(part) <= COHERE_MAX_TOKENS:
            fits = middle
        else:
            too_long = middle
    return text[:fits] if truncate == "END" else text[len(text) - fits:]


def serve(regions: dict[str, RegionConfig], conn: Connection) -> None:
    """Run a stand-in in this (separate) process: sends its URL, answers "stats" until told "stop"."""
    with BedrockStandin(regions) as standin:
        conn.send(standin.url)
        while conn.recv() != "stop":
            with standin._lock:
                conn.send({"stats": {name: asdict(stats) for name, stats in standin.stats.items()},
                           "errors": list(standin.errors)})
