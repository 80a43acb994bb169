"""A loopback stand-in for an OpenSearch cluster that checks every request and response against the API spec.

It keeps documents in memory and evaluates the query subset the store uses (bool filters and should clauses,
term, terms, wildcard, ids, match_all, multi_match, knn). Text matching uses ``bot.text.analyze`` in place of Nori
and the identifier analyzer and ranks by shared terms: it proves request and response handling, not relevance.
Like a cluster, it refuses a document with a field its strict mapping lacks.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from bot.text import analyze
from tests import opensearch_spec as spec

_REQUESTS = {  # operation -> (namespace file, request body name)
    "indices.create": ("indices", "indices.create"),
    "bulk": ("_core", "bulk"),
    "search": ("_core", "search"),
    "count": ("_core", "count"),
    "delete_by_query": ("_core", "delete_by_query"),
    "mget": ("_core", "mget"),
    "index": ("_core", "index"),
    "indices.put_mapping": ("indices", "indices.put_mapping"),
}
_RESPONSES = {  # operation -> (namespace file, response name)
    "info": ("_core", "info@200"),
    "indices.create": ("indices", "indices.create@200"),
    "bulk": ("_core", "bulk@200"),
    "search": ("_core", "search@200"),
    "count": ("_core", "count@200"),
    "mget": ("_core", "mget@200"),
    "index": ("_core", "index@200"),
    "get": ("_core", "get@200"),
    "indices.put_mapping": ("indices", "indices.put_mapping@200"),
}


class ApiError(Exception):
    """An error answer: HTTP status, OpenSearch error type and reason."""

    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


class StandIn:
    """The cluster state and the request log of one stand-in."""

    def __init__(self, plugins: tuple[str, ...] = ("analysis-nori", "opensearch-knn"),
                 basic_auth: str | None = None, list_plugins: bool = True) -> None:
        self.plugins = plugins
        self.list_plugins = list_plugins  # False: the user may not list plugins (403), as on restricted clusters
        self.basic_auth = basic_auth  # "user:password" every request must carry, when set
        self.indices: dict[str, dict[str, Any]] = {}  # name -> {"body": create body, "docs": {id: source}}
        self.problems: list[str] = []  # spec violations in requests or responses
        self.requests: list[tuple[str, str]] = []  # (operation, index)
        self.fail_once: dict[str, int] = {}  # document id -> status of its next bulk item, then success
        self.fail_always: dict[str, tuple[int, str]] = {}  # document id -> (status, error type)
        # indices whose next existence check answers 404 although they exist: another instance creates them
        # between a client's check and its create
        self.created_meanwhile: set[str] = set()
        self.lock = threading.Lock()

    # --- spec checks ---

    def check_request(self, operation: str, body: Any) -> None:
        if operation not in _REQUESTS:
            return
        problems = spec.errors(spec.request_body_validator(*_REQUESTS[operation]), body)
        if operation == "bulk":
            action = spec.schema_validator("_core.bulk", "OperationContainer")
            for line in body:
                if any(key in line for key in ("index", "create", "delete", "update")) and len(line) == 1:
                    problems += spec.errors(action, line)
        if problems:
            self.problems += [f"{operation} request: {problem}" for problem in problems]
            raise ApiError(400, "x_content_parse_exception", f"{operation}: {problems[0]}")

    def check_response(self, operation: str, body: Any) -> None:
        if operation in _RESPONSES:
            validator = spec.response_validator(*_RESPONSES[operation])
        elif operation == "delete_by_query":
            # delete_by_query@200 is a oneOf whose task branch requires nothing, so a synchronous answer
            # matches both branches; check it against the synchronous branch alone.
            validator = spec.schema_validator("_common", "BulkByScrollResponseBase")
        else:
            return
        self.problems += [f"{operation} response: {problem}" for problem in spec.errors(validator, body)]

    # --- helpers ---

    def resolve(self, expression: str, ignore_unavailable: bool = False) -> list[str]:
        names: list[str] = []
        for part in expression.split(","):
            if "*" in part:
                names += sorted(name for name in self.indices if fnmatch.fnmatchcase(name, part))
            elif part in self.indices:
                names.append(part)
            elif not ignore_unavailable:
                raise ApiError(404, "index_not_found_exception", f"no such index [{part}]")
        return names

    def dimension(self, index: str) -> int | None:
        properties = self.indices[index]["body"].get("mappings", {}).get("properties", {})
        vector = properties.get("vector")
        return vector["dimension"] if vector and vector.get("type") == "knn_vector" else None

    def matches(self, query: dict[str, Any], doc_id: str, source: dict[str, Any]) -> bool:
        (kind, spec_), = query.items()
        if kind == "match_all":
            return True
        if kind == "bool":
            clauses = [c for key in ("must", "filter") for c in _as_list(spec_.get(key, []))]
            should = _as_list(spec_.get("should", []))
            # as in OpenSearch: with must or filter clauses, should clauses only score unless a minimum is set
            needed = int(spec_.get("minimum_should_match", 0 if clauses else 1 if should else 0))
            return (all(self.matches(clause, doc_id, source) for clause in clauses)
                    and not any(self.matches(clause, doc_id, source) for clause in _as_list(spec_.get("must_not", [])))
                    and sum(self.matches(clause, doc_id, source) for clause in should) >= needed)
        if kind == "exists":
            return bool(_values(source, spec_["field"]))
        if kind == "term":
            (field, value), = spec_.items()
            value = value["value"] if isinstance(value, dict) else value
            return value in _values(source, field)
        if kind == "terms":
            (field, values), = spec_.items()
            return any(value in values for value in _values(source, field))
        if kind == "wildcard":
            (field, pattern), = spec_.items()
            pattern = pattern["value"] if isinstance(pattern, dict) else pattern
            return any(_wildcard(pattern).fullmatch(str(value)) for value in _values(source, field))
        if kind == "ids":
            return doc_id in spec_["values"]
        if kind == "multi_match":
            return self.text_score(spec_, source) > 0
        raise ApiError(400, "parsing_exception", f"stand-in does not evaluate [{kind}] here")

    @staticmethod
    def text_score(multi_match: dict[str, Any], source: dict[str, Any]) -> float:
        wanted = set(analyze(multi_match["query"]))
        best = 0.0
        for field in multi_match["fields"]:
            name, _, boost = field.partition("^")
            value = source.get(name.split(".")[0], "")
            best = max(best, len(wanted & set(analyze(str(value)))) * float(boost or 1))
        return best

    # --- operations ---

    def search(self, index: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        names = self.resolve(index, params.get("ignore_unavailable") == "true")
        query = body.get("query", {"match_all": {}})
        scored: list[tuple[float, str, str, dict[str, Any]]] = []
        for name in names:
            for doc_id, source in self.indices[name]["docs"].items():
                if "knn" in query:
                    (field, knn), = query["knn"].items()
                    if source.get(field) is None:
                        continue  # a document without a vector is not in the graph
                    if "filter" in knn and not self.matches(knn["filter"], doc_id, source):
                        continue
                    if self.dimension(name) != len(knn["vector"]):
                        raise ApiError(400, "illegal_argument_exception", "query vector has invalid dimension")
                    cosine = float(np.dot(np.asarray(source[field]), np.asarray(knn["vector"])))
                    scored.append(((1 + cosine) / 2, name, doc_id, source))
                elif self.matches(query, doc_id, source):
                    must = query.get("bool", {}).get("must", [])
                    score = sum(self.text_score(c["multi_match"], source) for c in must if "multi_match" in c)
                    scored.append((score or 1.0, name, doc_id, source))
        if "knn" in query:
            (_, knn), = query["knn"].items()
            scored = sorted(scored, key=lambda s: -s[0])[: knn.get("k", 10)]
        if "sort" in body:
            fields = [c if isinstance(c, str) else next(iter(c)) for c in body["sort"]]
            scored.sort(key=lambda s: [s[3].get(field) for field in fields])
            if "search_after" in body:
                scored = [s for s in scored if [s[3].get(field) for field in fields] > body["search_after"]]
        else:
            scored.sort(key=lambda s: -s[0])
        hits = []
        for score, name, doc_id, source in scored[: body.get("size", 10)]:
            hit: dict[str, Any] = {"_index": name, "_id": doc_id, "_score": score}
            wanted = body.get("_source", True)
            if wanted is True:
                hit["_source"] = source
            elif isinstance(wanted, list):
                hit["_source"] = {key: value for key, value in source.items() if key in wanted}
            if "sort" in body:
                hit["_score"] = None
                hit["sort"] = [source.get(field) for field in fields]
            hits.append(hit)
        return {"took": 1, "timed_out": False,
                "_shards": {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0},
                "hits": {"total": {"value": len(scored), "relation": "eq"},
                         "max_score": max((h["_score"] for h in hits if h["_score"] is not None), default=None),
                         "hits": hits}}

    def unmapped(self, index: str, source: dict[str, Any]) -> list[str]:
        """Fields of ``source`` that the index's strict mapping lacks (what a cluster refuses)."""
        mappings = self.indices[index]["body"].get("mappings", {})
        if mappings.get("dynamic") != "strict":
            return []
        return sorted(set(source) - set(mappings.get("properties", {})))

    def put_mapping(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        for name in self.resolve(index):
            mappings = self.indices[name]["body"].setdefault("mappings", {})
            properties = mappings.setdefault("properties", {})
            for field, mapping in body.get("properties", {}).items():
                if field in properties and properties[field] != mapping:
                    raise ApiError(400, "illegal_argument_exception", f"mapper [{field}] cannot be changed")
                properties[field] = mapping
        return {"acknowledged": True}

    def bulk(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        items = []
        i = 0
        while i < len(lines):
            (operation, meta), = lines[i].items()
            source = lines[i + 1] if operation != "delete" else None
            i += 1 if source is None else 2
            index, doc_id = meta["_index"], meta["_id"]
            result: dict[str, Any] = {"_index": index, "_id": doc_id}
            if doc_id in self.fail_always:
                status, kind = self.fail_always[doc_id]
                result.update(status=status, error={"type": kind, "reason": f"stand-in refuses {doc_id}"})
            elif doc_id in self.fail_once:
                status = self.fail_once.pop(doc_id)
                result.update(status=status, error={"type": "es_rejected_execution_exception",
                                                    "reason": "rejected execution (stand-in)"})
            elif index not in self.indices:
                result.update(status=404, error={"type": "index_not_found_exception", "reason": index})
            elif operation == "delete":
                existed = self.indices[index]["docs"].pop(doc_id, None) is not None
                result.update(status=200 if existed else 404, result="deleted" if existed else "not_found")
            elif operation == "update" and doc_id not in self.indices[index]["docs"]:
                result.update(status=404, error={"type": "document_missing_exception",
                                                 "reason": f"[{doc_id}]: document missing"})
            elif operation == "update":
                merged = {**self.indices[index]["docs"][doc_id], **source["doc"]}
                dimension = self.dimension(index)
                if dimension is not None and merged.get("vector") is not None and dimension != len(merged["vector"]):
                    result.update(status=400, error={"type": "mapper_parsing_exception",
                                                     "reason": "Vector dimension mismatch"})
                else:
                    self.indices[index]["docs"][doc_id] = merged
                    result.update(status=200, result="updated")
            else:
                dimension = self.dimension(index)
                vector = source.get("vector")
                unmapped = self.unmapped(index, source)
                if unmapped:
                    result.update(status=400, error={"type": "strict_dynamic_mapping_exception", "reason": (
                        f"mapping set to strict, dynamic introduction of [{unmapped[0]}] within [_doc] is not allowed")})
                elif dimension is not None and vector is not None and dimension != len(vector):
                    result.update(status=400, error={"type": "mapper_parsing_exception",
                                                     "reason": "Vector dimension mismatch"})
                else:
                    created = doc_id not in self.indices[index]["docs"]
                    self.indices[index]["docs"][doc_id] = source
                    result.update(status=201 if created else 200, result="created" if created else "updated")
            items.append({operation: result})
        return {"took": 1, "errors": any(item[next(iter(item))]["status"] >= 300 for item in items), "items": items}

    def delete_by_query(self, index: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        deleted = 0
        for name in self.resolve(index, params.get("ignore_unavailable") == "true"):
            docs = self.indices[name]["docs"]
            for doc_id in [d for d, s in docs.items() if self.matches(body["query"], d, s)]:
                del docs[doc_id]
                deleted += 1
        return {"took": 1, "timed_out": False, "total": deleted, "deleted": deleted, "batches": 1,
                "version_conflicts": 0, "noops": 0, "retries": {"bulk": 0, "search": 0},
                "throttled_millis": 0, "requests_per_second": -1.0, "throttled_until_millis": 0, "failures": []}

    def handle(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any, str]:
        """Answer one request: (status, JSON body, operation name)."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if not parts:
            return 200, {"name": "standin", "cluster_name": "standin", "cluster_uuid": "x",
                         "version": {"distribution": "opensearch", "number": "2.19.0", "build_type": "tar",
                                     "build_hash": "x", "build_date": "2025-01-01T00:00:00Z",
                                     "build_snapshot": False, "lucene_version": "9.12.1",
                                     "minimum_wire_compatibility_version": "7.10.0",
                                     "minimum_index_compatibility_version": "7.0.0"},
                         "tagline": "The OpenSearch Project: https://opensearch.org/"}, "info"
        if parts == ["_cat", "plugins"]:
            if not self.list_plugins:
                raise ApiError(403, "security_exception", "no permissions for [cluster:monitor/nodes/info]")
            return 200, [{"name": "node-1", "component": p, "version": "2.19.0"} for p in self.plugins], "cat"
        if parts == ["_bulk"]:
            self.check_request("bulk", body)
            return 200, self.bulk(body), "bulk"
        index = parts[0]
        self.requests.append((method + " " + "/".join(["{index}", *parts[1:]]), index))
        if len(parts) == 1:
            if method == "HEAD":
                if index in self.created_meanwhile:
                    self.created_meanwhile.discard(index)
                    return 404, None, "exists"
                return (200 if index in self.indices else 404), None, "exists"
            if method == "PUT":
                self.check_request("indices.create", body)
                if index in self.indices:
                    raise ApiError(400, "resource_already_exists_exception", f"index [{index}] already exists")
                analysis = json.dumps(body.get("settings", {}).get("analysis", {}))
                if "nori" in analysis and "analysis-nori" not in self.plugins:
                    raise ApiError(400, "illegal_argument_exception", "Unknown tokenizer type [nori_tokenizer]")
                self.indices[index] = {"body": body, "docs": {}}
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": index}, "indices.create"
            if method == "DELETE":
                self.indices.pop(index)
                return 200, {"acknowledged": True}, "indices.delete"
        operation = parts[1]
        if operation == "_mapping" and method in ("PUT", "POST"):
            self.check_request("indices.put_mapping", body)
            return 200, self.put_mapping(index, body), "indices.put_mapping"
        if operation == "_alias":
            return 200, {name: {"aliases": {}} for name in self.resolve(index)}, "indices.get_alias"
        if operation == "_search":
            self.check_request("search", body)
            return 200, self.search(index, body, params), "search"
        if operation == "_count":
            self.check_request("count", body)
            count = sum(1 for name in self.resolve(index, params.get("ignore_unavailable") == "true")
                        for d, s in self.indices[name]["docs"].items() if self.matches(body["query"], d, s))
            return 200, {"count": count, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}, "count"
        if operation == "_delete_by_query":
            self.check_request("delete_by_query", body)
            return 200, self.delete_by_query(index, body, params), "delete_by_query"
        if operation == "_mget":
            self.check_request("mget", body)
            docs = self.indices[self.resolve(index)[0]]["docs"]
            return 200, {"docs": [
                {"_index": index, "_id": i, "found": True, "_version": 1, "_seq_no": 0, "_primary_term": 1,
                 "_source": docs[i]} if i in docs else {"_index": index, "_id": i, "found": False}
                for i in body["ids"]]}, "mget"
        if operation == "_doc" and len(parts) == 3:
            docs = self.indices[self.resolve(index)[0]]["docs"]
            doc_id = parts[2]
            result = {"_index": index, "_id": doc_id, "_version": 1, "_seq_no": 0, "_primary_term": 1,
                      "_shards": {"total": 1, "successful": 1, "failed": 0}}
            if method in ("PUT", "POST"):
                self.check_request("index", body)
                unmapped = self.unmapped(self.resolve(index)[0], body)
                if unmapped:
                    raise ApiError(400, "strict_dynamic_mapping_exception",
                                   f"mapping set to strict, dynamic introduction of [{unmapped[0]}] is not allowed")
                created = doc_id not in docs
                docs[doc_id] = body
                return (201 if created else 200), {**result, "result": "created" if created else "updated"}, "index"
            if doc_id not in docs:
                return 404, {"_index": index, "_id": doc_id, "found": False}, "get"
            if method == "GET":
                return 200, {"_index": index, "_id": doc_id, "found": True, "_version": 1, "_seq_no": 0,
                             "_primary_term": 1, "_source": docs[doc_id]}, "get"
            if method == "DELETE":
                del docs[doc_id]
                return 200, {**result, "result": "deleted"}, "delete"
        raise ApiError(400, "illegal_argument_exception", f"stand-in does not know {method} {path}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _values(source: dict[str, Any], field: str) -> list[Any]:
    """The values of a field (a keyword array has several); a sub-field such as ``name.raw`` reads ``name``."""
    value = source.get(field, source.get(field.split(".")[0]))
    return value if isinstance(value, list) else [] if value is None else [value]


def _wildcard(pattern: str) -> re.Pattern[str]:
    """A wildcard query pattern (``*``, ``?``, backslash escapes) as a regular expression."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(out), re.S)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Keep test output quiet."""

    def _answer(self) -> None:
        url = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client went away mid-request (a killed worker): nothing to answer
            self.close_connection = True
            return
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
        body: Any = None
        if text.strip():
            if url.path.endswith("_bulk"):
                body = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                body = json.loads(text)
        standin = self.server.standin
        with standin.lock:
            try:
                if standin.basic_auth and self.headers.get("Authorization") != (
                        "Basic " + base64.b64encode(standin.basic_auth.encode()).decode()):
                    raise ApiError(401, "security_exception", "missing or wrong credentials")
                status, answer, operation = standin.handle(self.command, url.path, params, body)
                if status < 300:
                    standin.check_response(operation, answer)
            except ApiError as error:
                status = error.status
                answer = {"error": {"root_cause": [{"type": error.kind, "reason": error.reason}],
                                    "type": error.kind, "reason": error.reason}, "status": error.status}
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


class _Server(ThreadingHTTPServer):
    standin: StandIn
    daemon_threads = True


@contextmanager
def serve(standin: StandIn) -> Iterator[str]:
    """Run ``standin`` on a free loopback port; yields its URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.standin = standin
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
