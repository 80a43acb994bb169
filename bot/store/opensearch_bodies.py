"""Pure builders of the OpenSearch request bodies the store sends, and readers of what comes back."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from bot.documents import BranchState, Document, DocumentRef, Overlay, short_name

VECTOR_FIELD = "vector"
# Part-of-speech tags dropped from summaries: endings, particles, interjections, adverbs,
# determiners, symbols and affixes (the stop tags of the Korean reference setup).
NORI_STOP_TAGS = ("E", "IC", "J", "MAG", "MAJ", "MM", "SP", "SSC", "SSO", "SC", "SE",
                  "XPN", "XSA", "XSN", "XSV", "UNA", "NA", "VSV")
# Splits on anything but letters and digits, and inside identifiers at camelCase humps and
# letter/digit boundaries: validateUserToken -> validate, User, Token; HTTPServer2 -> HTTP, Server, 2.
IDENTIFIER_PATTERN = (r"[^\p{L}\p{N}]+"
                      r"|(?<=\p{Ll})(?=\p{Lu})"
                      r"|(?<=\p{Lu})(?=\p{Lu}\p{Ll})"
                      r"|(?<=\p{L})(?=\p{N})"
                      r"|(?<=\p{N})(?=\p{L})")
LEXICAL_FIELDS = ("name^3", "summary^2", "path.parts", "code")
REF_FIELDS = ("id", "path", "name", "content_hash", "start_line", "end_line", "summary_ok", "calls")
# Fields added to the documents mapping since its format was fixed: put into existing indices at start-up.
ADDED_FIELDS: dict[str, Any] = {"calls": {"type": "keyword", "ignore_above": 512},
                                "short_name": {"type": "keyword", "ignore_above": 1024}}
HNSW_PARAMETERS = {"m": 16, "ef_construction": 128}
# Index names carry the format: v2 keys every row by the repository's numeric id. Indices of an older format
# are left alone (see docs/opensearch.md on upgrading); nothing reads them.
FORMAT = "v2"


def documents_index(prefix: str, dimension: int) -> str:
    """The documents index for vectors of ``dimension``: one per dimension, so embedders can change."""
    return f"{prefix}-{FORMAT}-documents-{dimension}"


def documents_pattern(prefix: str) -> str:
    """A pattern matching every documents index of ``prefix``."""
    return f"{prefix}-{FORMAT}-documents-*"


def dimension_of(prefix: str, index: str) -> int | None:
    """The dimension in a documents index name, None for other names."""
    head = f"{prefix}-{FORMAT}-documents-"
    tail = index.removeprefix(head)
    return int(tail) if index.startswith(head) and tail.isdigit() else None


def state_index(prefix: str) -> str:
    """The index of branch states."""
    return f"{prefix}-{FORMAT}-state"


def summaries_index(prefix: str) -> str:
    """The summary cache index."""
    return f"{prefix}-{FORMAT}-summaries"


def vectors_index(prefix: str) -> str:
    """The embedding cache index."""
    return f"{prefix}-{FORMAT}-vectors"


def overlays_index(prefix: str) -> str:
    """The index of pull request overlays (base branch, head, shadowed paths)."""
    return f"{prefix}-{FORMAT}-overlays"


def _index_settings(shards: int | None) -> dict[str, Any]:
    # Serverless collections manage shards and replicas themselves and reject these settings.
    if shards is None:
        return {}
    return {"number_of_shards": shards, "auto_expand_replicas": "0-1"}


def documents_index_body(dimension: int, shards: int | None = 1) -> dict[str, Any]:
    """Settings and mappings of a documents index: Nori summaries, identifier-split names and code, a vector."""
    return {
        "settings": {
            "index": {**_index_settings(shards), "knn": True},
            "analysis": {
                "tokenizer": {
                    "ragcode_nori": {"type": "nori_tokenizer", "decompound_mode": "mixed",
                                     "discard_punctuation": True},
                    "ragcode_identifier": {"type": "pattern", "pattern": IDENTIFIER_PATTERN},
                },
                "filter": {
                    "ragcode_nori_pos": {"type": "nori_part_of_speech", "stoptags": list(NORI_STOP_TAGS)},
                },
                "analyzer": {
                    "ragcode_korean": {"type": "custom", "tokenizer": "ragcode_nori",
                                       "filter": ["nori_number", "lowercase", "ragcode_nori_pos"]},
                    "ragcode_identifier": {"type": "custom", "tokenizer": "ragcode_identifier",
                                           "filter": ["lowercase"]},
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "keyword"},
                "repo_id": {"type": "long"},
                "branch": {"type": "keyword"},
                "path": {"type": "keyword",
                         "fields": {"parts": {"type": "text", "analyzer": "ragcode_identifier"}}},
                "name": {"type": "text", "analyzer": "ragcode_identifier",
                         "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}},
                "kind": {"type": "keyword"},
                "language": {"type": "keyword"},
                "start_line": {"type": "integer"},
                "end_line": {"type": "integer"},
                "code": {"type": "text", "analyzer": "ragcode_identifier"},
                "content_hash": {"type": "keyword"},
                "summary": {"type": "text", "analyzer": "ragcode_korean"},
                "summary_ok": {"type": "boolean"},
                **ADDED_FIELDS,
                VECTOR_FIELD: {
                    "type": "knn_vector",
                    "dimension": dimension,
                    # Lucene HNSW filters inside the graph search (efficient filtering, 2.4+).
                    # Vectors are L2-normalized, so cosine similarity equals the inner product.
                    "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                               "parameters": dict(HNSW_PARAMETERS)},
                },
            },
        },
    }


def state_index_body(shards: int | None = 1) -> dict[str, Any]:
    """Settings and mappings of the branch state index."""
    return {
        "settings": {"index": {**_index_settings(shards)}},
        "mappings": {"dynamic": "strict", "properties": {
            "repo_id": {"type": "long"},
            "repo": {"type": "keyword"},
            "installation": {"type": "long"},
            "branch": {"type": "keyword"},
            "commit": {"type": "keyword"},
            "functions": {"type": "integer"},
            "indexed_at": {"type": "double"},
            "embedder": {"type": "keyword"},
            "dimension": {"type": "integer"},
            "complete": {"type": "boolean"},
        }},
    }


def overlays_index_body(shards: int | None = 1) -> dict[str, Any]:
    """Settings and mappings of the overlay index (looked up by id; deleted by repository)."""
    return {
        "settings": {"index": {**_index_settings(shards)}},
        "mappings": {"dynamic": "strict", "properties": {
            "repo_id": {"type": "long"},
            "number": {"type": "long"},
            "base": {"type": "keyword", "index": False},
            "head": {"type": "keyword", "index": False},
            "merge_base": {"type": "keyword", "index": False},
            "shadowed": {"type": "keyword", "index": False},
            "fork": {"type": "boolean", "index": False},
        }},
    }


def summaries_index_body(shards: int | None = 1) -> dict[str, Any]:
    """Settings and mappings of the summary cache index (looked up by id only)."""
    return {
        "settings": {"index": {**_index_settings(shards)}},
        "mappings": {"dynamic": "strict", "properties": {
            "repo_id": {"type": "long"},
            "key": {"type": "keyword", "index": False},
            "summary": {"type": "text", "index": False},
        }},
    }


def vectors_index_body(shards: int | None = 1) -> dict[str, Any]:
    """Settings and mappings of the embedding cache index (looked up by id only; vectors as base64 float32)."""
    return {
        "settings": {"index": {**_index_settings(shards)}},
        "mappings": {"dynamic": "strict", "properties": {
            "repo_id": {"type": "long"},
            "embedder": {"type": "keyword", "index": False},
            "key": {"type": "keyword", "index": False},
            "vector": {"type": "binary"},
        }},
    }


def cache_id(*parts: str) -> str:
    """Document id of a cache entry: a hash, since keys can exceed the 512-byte id limit."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def state_id(repo_id: int, branch: str) -> str:
    """Document id of a branch state."""
    return cache_id(str(repo_id), branch)


def document_source(document: Document) -> dict[str, Any]:
    """The stored form of a document."""
    source: dict[str, Any] = {
        "id": document.id, "repo_id": document.repo_id, "branch": document.branch, "path": document.path,
        "name": document.name, "kind": document.kind, "language": document.language,
        "start_line": document.start_line, "end_line": document.end_line, "code": document.code,
        "content_hash": document.content_hash, "summary": document.summary, "summary_ok": document.summary_ok,
        "calls": list(document.calls), "short_name": short_name(document.name),
    }
    if document.vector is not None:
        source[VECTOR_FIELD] = np.asarray(document.vector, dtype=np.float32).ravel().tolist()
    return source


def document_from_source(source: dict[str, Any]) -> Document:
    """A document from its stored form."""
    vector = source.get(VECTOR_FIELD)
    return Document(
        id=source["id"], repo_id=int(source["repo_id"]), branch=source["branch"], path=source["path"],
        name=source["name"], kind=source["kind"], language=source["language"],
        start_line=int(source["start_line"]), end_line=int(source["end_line"]), code=source["code"],
        content_hash=source["content_hash"], summary=source["summary"],
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        summary_ok=bool(source.get("summary_ok", True)), calls=tuple(source.get("calls") or ()),
    )


def ref_from_source(source: dict[str, Any]) -> DocumentRef:
    """A document ref from the stored form (only ``REF_FIELDS`` are needed)."""
    return DocumentRef(id=source["id"], path=source["path"], name=source["name"],
                       content_hash=source["content_hash"], start_line=int(source["start_line"]),
                       end_line=int(source["end_line"]), summary_ok=bool(source.get("summary_ok", True)),
                       calls=tuple(source.get("calls") or ()))


def state_source(state: BranchState) -> dict[str, Any]:
    """The stored form of a branch state."""
    return {"repo_id": state.repo_id, "repo": state.repo, "installation": state.installation,
            "branch": state.branch, "commit": state.commit, "functions": state.functions,
            "indexed_at": state.indexed_at, "embedder": state.embedder, "dimension": state.dimension,
            "complete": state.complete}


def state_from_source(source: dict[str, Any]) -> BranchState:
    """A branch state from its stored form."""
    return BranchState(repo_id=int(source["repo_id"]), repo=source["repo"],
                       installation=int(source.get("installation") or 0), branch=source["branch"],
                       commit=source["commit"], functions=int(source["functions"]),
                       indexed_at=float(source["indexed_at"]), embedder=source["embedder"],
                       dimension=int(source["dimension"]), complete=bool(source.get("complete", True)))


def overlay_source(overlay: Overlay) -> dict[str, Any]:
    """The stored form of a pull request overlay."""
    return {"repo_id": overlay.repo_id, "number": overlay.number, "base": overlay.base, "head": overlay.head,
            "merge_base": overlay.merge_base, "shadowed": list(overlay.shadowed), "fork": overlay.fork}


def overlay_from_source(source: dict[str, Any]) -> Overlay:
    """A pull request overlay from its stored form."""
    return Overlay(repo_id=int(source["repo_id"]), number=int(source["number"]), base=source["base"],
                   head=source["head"], merge_base=source["merge_base"], shadowed=tuple(source.get("shadowed") or ()),
                   fork=bool(source.get("fork", False)))


def summary_id(repo_id: int, key: str) -> str:
    """Document id of a cached summary of one repository."""
    return cache_id(str(repo_id), key)


def vector_id(repo_id: int, embedder: str, key: str) -> str:
    """Document id of a cached embedding of one repository."""
    return cache_id(str(repo_id), embedder, key)


def summary_source(repo_id: int, key: str, summary: str) -> dict[str, Any]:
    """The stored form of a cached summary."""
    return {"repo_id": repo_id, "key": key, "summary": summary}


def vector_source(repo_id: int, embedder: str, key: str, vector: np.ndarray) -> dict[str, Any]:
    """The stored form of a cached embedding."""
    data = np.ascontiguousarray(vector, dtype="<f4").ravel().tobytes()
    return {"repo_id": repo_id, "embedder": embedder, "key": key,
            "vector": base64.b64encode(data).decode("ascii")}


def vector_from_source(source: dict[str, Any]) -> np.ndarray:
    """A cached embedding from its stored form."""
    return np.frombuffer(base64.b64decode(source["vector"]), dtype="<f4").astype(np.float32)


def bulk_index_lines(index: str, items: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Bulk action and source lines that create or replace each (id, source) in ``index``."""
    lines: list[dict[str, Any]] = []
    for doc_id, source in items:
        lines.append({"index": {"_index": index, "_id": doc_id}})
        lines.append(source)
    return lines


def bulk_vector_lines(index: str, vectors: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Bulk action and partial-document lines that set the vector of each document (by id) in ``index``."""
    lines: list[dict[str, Any]] = []
    for doc_id, vector in vectors.items():
        lines.append({"update": {"_index": index, "_id": doc_id}})
        lines.append({"doc": {VECTOR_FIELD: np.asarray(vector, dtype=np.float32).ravel().tolist()}})
    return lines


def without_vectors_body(repo_id: int, branch: str, size: int) -> dict[str, Any]:
    """Documents of a branch that have no vector yet: id, name and summary."""
    return {"size": size, "_source": ["id", "name", "summary"], "track_total_hits": False, "sort": ["id"],
            "query": {"bool": {"filter": branch_filter(repo_id, branch),
                               "must_not": [{"exists": {"field": VECTOR_FIELD}}]}}}


def bulk_delete_lines(items: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Bulk action lines that delete each (index, id)."""
    return [{"delete": {"_index": index, "_id": doc_id}} for index, doc_id in items]


def repository_query(repo_id: int) -> dict[str, Any]:
    """A filter-only query for every row of one repository (documents, state or cache entries)."""
    return {"bool": {"filter": [{"term": {"repo_id": repo_id}}]}}


def branch_filter(repo_id: int, branch: str) -> list[dict[str, Any]]:
    """The term filters that scope a query to one repository branch."""
    return [{"term": {"repo_id": repo_id}}, {"term": {"branch": branch}}]


def branch_query(repo_id: int, branch: str, *, ids: Sequence[str] | None = None,
                 paths: Sequence[str] | None = None, pending: bool = False) -> dict[str, Any]:
    """A filter-only query for a branch's documents, optionally limited to ids, paths or fallback summaries."""
    clauses = branch_filter(repo_id, branch)
    if ids is not None:
        clauses.append({"ids": {"values": list(ids)}})
    if paths is not None:
        clauses.append({"terms": {"path": list(paths)}})
    if pending:
        clauses.append({"term": {"summary_ok": False}})
    return {"bool": {"filter": clauses}}


def lexical_search_body(repo_id: int, branch: str, query: str, limit: int) -> dict[str, Any]:
    """Keyword search over summary (Nori), name and code (identifier parts) and path, in one branch."""
    return {
        "size": limit,
        "_source": False,
        "track_total_hits": False,
        "query": {"bool": {
            "must": [{"multi_match": {"query": query, "fields": list(LEXICAL_FIELDS),
                                      "type": "best_fields", "tie_breaker": 0.3}}],
            "filter": branch_filter(repo_id, branch),
        }},
    }


def knn_search_body(repo_id: int, branch: str, vector: np.ndarray, limit: int) -> dict[str, Any]:
    """Nearest neighbours of ``vector`` in one branch, filtered inside the graph search."""
    return {
        "size": limit,
        "_source": False,
        "track_total_hits": False,
        "query": {"knn": {VECTOR_FIELD: {
            "vector": np.asarray(vector, dtype=np.float32).ravel().tolist(),
            "k": limit,
            "filter": {"bool": {"filter": branch_filter(repo_id, branch)}},
        }}},
    }


def inner_product(score: float) -> float:
    """The inner product of two unit vectors from a Lucene ``cosinesimil`` score, (1 + cos) / 2."""
    return 2.0 * score - 1.0


def ids_search_body(repo_id: int, branch: str, ids: Sequence[str], source: bool | Sequence[str] = True) -> dict[str, Any]:
    """Documents of a branch by id (ids of other branches never match)."""
    return {"size": len(ids), "_source": source if isinstance(source, bool) else list(source),
            "track_total_hits": False, "query": branch_query(repo_id, branch, ids=ids)}


def refs_search_body(repo_id: int, branch: str, paths: Sequence[str] | None, size: int,
                     after: str | None, *, pending: bool = False) -> dict[str, Any]:
    """One page of a branch's document refs, in id order (``after``: the last id of the previous page)."""
    body: dict[str, Any] = {"size": size, "_source": list(REF_FIELDS), "track_total_hits": False,
                            "sort": ["id"], "query": branch_query(repo_id, branch, paths=paths, pending=pending)}
    if after is not None:
        body["search_after"] = [after]
    return body


def sample_search_body(repo_id: int, branch: str, size: int) -> dict[str, Any]:
    """The vectors of a branch's first ``size`` documents in id order: ids are hashes, so an even sample."""
    return {"size": size, "_source": [VECTOR_FIELD], "track_total_hits": False, "sort": ["id"],
            "query": branch_query(repo_id, branch)}


def _wildcard(text: str) -> str:
    """``text`` matched literally in a wildcard pattern."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def names_search_body(repo_id: int, branch: str, shorts: Sequence[str], size: int, *,
                      legacy: bool = False) -> dict[str, Any]:
    """Refs of a branch's documents whose last name (``record`` of ``Ledger.record#2``) is one of ``shorts``; with
    ``legacy``, also documents written before last names were stored, by wildcards on their qualified name."""
    should: list[dict[str, Any]] = [{"terms": {"short_name": list(shorts)}}]
    if legacy:
        patterns = [{"wildcard": {"name.raw": {"value": pattern}}} for short in shorts
                    for pattern in (_wildcard(short), f"*.{_wildcard(short)}", f"{_wildcard(short)}#*",
                                    f"*.{_wildcard(short)}#*")]
        should.append({"bool": {"must_not": [{"exists": {"field": "short_name"}}], "should": patterns,
                                "minimum_should_match": 1}})
    return {"size": size, "_source": list(REF_FIELDS), "track_total_hits": False,
            "query": {"bool": {"filter": branch_filter(repo_id, branch), "should": should,
                               "minimum_should_match": 1}}}


def without_short_names_body(repo_id: int, branch: str) -> dict[str, Any]:
    """A count body for a branch's documents written before last names were stored."""
    return {"query": {"bool": {"filter": branch_filter(repo_id, branch),
                               "must_not": [{"exists": {"field": "short_name"}}]}}}


def path_search_body(repo_id: int, branch: str, path: str) -> dict[str, Any]:
    """One document of a branch in the file ``path`` (exactly, or ending in ``/path``), or in the folder ``path/``."""
    quoted = _wildcard(path)
    if path.endswith("/"):
        should: list[dict[str, Any]] = [{"wildcard": {"path": {"value": f"{quoted}*"}}},
                                        {"wildcard": {"path": {"value": f"*/{quoted}*"}}}]
    else:
        should = [{"term": {"path": path}}, {"wildcard": {"path": {"value": f"*/{quoted}"}}}]
    return {"size": 1, "_source": ["path"], "track_total_hits": False,
            "query": {"bool": {"filter": branch_filter(repo_id, branch), "should": should, "minimum_should_match": 1}}}


def callers_search_body(repo_id: int, branch: str, names: Sequence[str], size: int) -> dict[str, Any]:
    """Refs of a branch's documents whose recorded calls include one of ``names``."""
    return {"size": size, "_source": list(REF_FIELDS), "track_total_hits": False,
            "query": {"bool": {"filter": [*branch_filter(repo_id, branch), {"terms": {"calls": list(names)}}]}}}


def delete_branch_body(repo_id: int, branch: str) -> dict[str, Any]:
    """A delete_by_query body removing every document of a branch."""
    return {"query": branch_query(repo_id, branch)}


def delete_repository_body(repo_id: int) -> dict[str, Any]:
    """A delete_by_query body removing every row of a repository."""
    return {"query": repository_query(repo_id)}


def count_branch_body(repo_id: int, branch: str) -> dict[str, Any]:
    """A count body for the documents of a branch."""
    return {"query": branch_query(repo_id, branch)}


def count_all_body() -> dict[str, Any]:
    """A count body for every document of an index."""
    return {"query": {"match_all": {}}}


def branch_states_body(size: int, *, repo_id: int | None = None, name: str | None = None,
                       after: list[Any] | None = None) -> dict[str, Any]:
    """One page of branch states (of one repository, or of those named ``name``), by repository id and branch."""
    clauses: list[dict[str, Any]] = []
    if repo_id is not None:
        clauses.append({"term": {"repo_id": repo_id}})
    if name is not None:
        clauses.append({"term": {"repo": name}})
    body: dict[str, Any] = {"size": size, "query": {"bool": {"filter": clauses}} if clauses else {"match_all": {}},
                            "sort": ["repo_id", "branch"], "track_total_hits": False}
    if after is not None:
        body["search_after"] = after
    return body


def mget_body(ids: Sequence[str]) -> dict[str, Any]:
    """A multi-get body for ids of one index."""
    return {"ids": list(ids)}
