"""Every request body the OpenSearch store builds, validated against the OpenSearch API specification."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from bot.documents import BranchState, Document, content_hash, document_id
from bot.store import opensearch_bodies as bodies
from tests import opensearch_spec as spec

pytestmark = pytest.mark.skipif(not spec.available(), reason=f"no OpenSearch API specification at {spec.SPEC_DIR}")


def _doc(vector: bool = True) -> Document:
    code = "def validateUserToken(token):\n    return token.ok\n"
    return Document(
        id=document_id(101, "main", "auth.py", "validateUserToken"), repo_id=101, branch="main",
        path="auth.py", name="validateUserToken", kind="function", language="python", start_line=1, end_line=2,
        code=code, content_hash=content_hash(code), summary="사용자의 토큰을 검증한다",
        vector=np.full(8, 8 ** -0.5, dtype=np.float32) if vector else None,
    )


def assert_valid(validator: Any, body: Any) -> None:
    problems = spec.errors(validator, body)
    assert problems == [], "\n".join(problems)


def assert_valid_bulk(lines: list[dict[str, Any]]) -> None:
    """The NDJSON lines as the bulk body, and every action line as an ``OperationContainer``."""
    assert_valid(spec.request_body_validator("_core", "bulk"), lines)
    action = spec.schema_validator("_core.bulk", "OperationContainer")
    i = 0
    while i < len(lines):
        assert_valid(action, lines[i])
        i += 1 if "delete" in lines[i] else 2


CREATE = ("indices", "indices.create")
SEARCH = ("_core", "search")


@pytest.mark.parametrize("shards", [1, 3, None])
@pytest.mark.parametrize("dimension", [8, 384, 1024])
def test_documents_index_body(dimension: int, shards: int | None) -> None:
    body = bodies.documents_index_body(dimension, shards)
    assert_valid(spec.request_body_validator(*CREATE), body)
    analysis = body["settings"]["analysis"]
    assert analysis["tokenizer"]["ragcode_nori"] == {"type": "nori_tokenizer", "decompound_mode": "mixed",
                                                     "discard_punctuation": True}
    korean = analysis["analyzer"]["ragcode_korean"]
    assert korean["filter"] == ["nori_number", "lowercase", "ragcode_nori_pos"]
    assert analysis["filter"]["ragcode_nori_pos"]["stoptags"] == list(bodies.NORI_STOP_TAGS)
    properties = body["mappings"]["properties"]
    assert properties["summary"]["analyzer"] == "ragcode_korean"
    assert properties["name"]["analyzer"] == properties["code"]["analyzer"] == "ragcode_identifier"
    assert {properties[f]["type"] for f in ("branch", "path")} == {"keyword"}
    assert properties["repo_id"]["type"] == "long"
    assert properties["vector"]["dimension"] == dimension
    assert properties["vector"]["method"]["space_type"] == "cosinesimil"
    assert body["settings"]["index"]["knn"] is True
    assert ("number_of_shards" in body["settings"]["index"]) == (shards is not None)


@pytest.mark.parametrize("builder", [bodies.state_index_body, bodies.summaries_index_body, bodies.vectors_index_body])
def test_small_index_bodies(builder: Any) -> None:
    assert_valid(spec.request_body_validator(*CREATE), builder(1))
    assert_valid(spec.request_body_validator(*CREATE), builder(None))


def test_validator_rejects_broken_bodies() -> None:
    validator = spec.request_body_validator(*CREATE)
    body = bodies.documents_index_body(8)
    broken = copy.deepcopy(body)
    broken["settings"]["analysis"]["tokenizer"]["ragcode_nori"]["decompound_mode"] = "bogus"
    assert any("ragcode_nori" in problem for problem in spec.errors(validator, broken))
    broken = copy.deepcopy(body)
    broken["mappings"]["properties"]["vector"]["dimension"] = "big"
    assert spec.errors(validator, broken)
    broken = bodies.lexical_search_body(101, "main", "x", 5)
    broken["query"]["bool"]["must"] = "oops"
    assert spec.errors(spec.request_body_validator(*SEARCH), broken)
    assert spec.errors(spec.schema_validator("_core.bulk", "OperationContainer"), {"delete": {"_id": 5}})


def test_bulk_lines() -> None:
    document = _doc()
    lines = bodies.bulk_index_lines("ragcode-documents-8", [(document.id, bodies.document_source(document))])
    lines += bodies.bulk_delete_lines([("ragcode-documents-8", "a" * 40), ("ragcode-documents-4", "b" * 40)])
    assert_valid_bulk(lines)
    assert lines[0] == {"index": {"_index": "ragcode-documents-8", "_id": document.id}}
    assert len(lines[1]["vector"]) == 8
    no_vector = bodies.document_source(_doc(vector=False))
    assert "vector" not in no_vector
    assert_valid_bulk(bodies.bulk_index_lines("ragcode-documents-8", [("x", no_vector)]))


def test_cache_and_state_writes() -> None:
    vector = np.arange(4, dtype=np.float32)
    lines = bodies.bulk_index_lines("ragcode-summaries", [(bodies.cache_id("k"), bodies.summary_source(101, "k", "요약"))])
    lines += bodies.bulk_index_lines("ragcode-vectors", [(bodies.cache_id("e", "k"),
                                                          bodies.vector_source(101, "e", "k", vector))])
    assert_valid_bulk(lines)
    np.testing.assert_array_equal(bodies.vector_from_source(lines[3]), vector)
    state = BranchState(101, "acme/app", 7, "main", "c0ffee", 3, 1.5, "embedder", 8)
    assert_valid(spec.request_body_validator("_core", "index"), bodies.state_source(state))
    assert bodies.state_from_source(bodies.state_source(state)) == state
    assert len(bodies.cache_id("x" * 5000)) == 64  # ids stay under the 512-byte limit
    assert_valid(spec.request_body_validator("_core", "mget"), bodies.mget_body(["a", "b"]))


def test_search_bodies() -> None:
    validator = spec.request_body_validator(*SEARCH)
    lexical = bodies.lexical_search_body(101, "main", "비밀번호 검증", 50)
    assert_valid(validator, lexical)
    assert lexical["query"]["bool"]["filter"] == [{"term": {"repo_id": 101}}, {"term": {"branch": "main"}}]
    assert lexical["query"]["bool"]["must"][0]["multi_match"]["fields"] == list(bodies.LEXICAL_FIELDS)
    knn = bodies.knn_search_body(101, "main", np.ones(8, dtype=np.float32), 50)
    assert_valid(validator, knn)
    assert knn["query"]["knn"]["vector"]["filter"] == {"bool": {"filter": bodies.branch_filter(101, "main")}}
    for body in (
        bodies.ids_search_body(101, "main", ["a", "b"]),
        bodies.ids_search_body(101, "main", ["a"], source=False),
        bodies.refs_search_body(101, "main", None, 1000, None),
        bodies.refs_search_body(101, "main", ["a.py", "b.py"], 1000, "0" * 40),
        bodies.branch_states_body(10_000),
    ):
        assert_valid(validator, body)
    scoped = bodies.ids_search_body(101, "main", ["a"])["query"]["bool"]["filter"]
    assert scoped == [*bodies.branch_filter(101, "main"), {"ids": {"values": ["a"]}}]


def test_delete_and_count_bodies() -> None:
    assert_valid(spec.request_body_validator("_core", "delete_by_query"), bodies.delete_branch_body(101, "dev"))
    assert_valid(spec.request_body_validator("_core", "count"), bodies.count_branch_body(101, "dev"))
    assert_valid(spec.request_body_validator("_core", "count"), bodies.count_all_body())


def test_round_trips_and_names() -> None:
    document = _doc()
    back = bodies.document_from_source(bodies.document_source(document))
    np.testing.assert_array_equal(back.vector, document.vector)
    assert bodies.ref_from_source(bodies.document_source(document)).content_hash == document.content_hash
    assert bodies.dimension_of("ragcode", bodies.documents_index("ragcode", 384)) == 384
    assert bodies.dimension_of("ragcode", "ragcode-v2-documents-x") is None
    assert bodies.dimension_of("ragcode", "other-documents-8") is None
    assert bodies.inner_product(1.0) == 1.0 and bodies.inner_product(0.5) == 0.0
