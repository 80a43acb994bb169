"""One behaviour contract for every store backend: the embedded store, OpenSearch (real cluster or stand-in)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.config import load_settings
from bot.documents import Document, content_hash, document_id
from bot.store.base import Store

BACKENDS = ["local", "opensearch-standin", "opensearch"]


def _local(tmp_path: Path) -> Iterator[Store]:
    from bot.store.local import LocalStore

    store = LocalStore(tmp_path / "index")
    yield store
    store.close()


def _standin() -> Iterator[Store]:
    from bot.config import Settings
    from bot.store.opensearch import OpenSearchStore
    from tests import opensearch_spec
    from tests.opensearch_standin import StandIn, serve

    if not opensearch_spec.available():
        pytest.skip(f"the OpenSearch API specification is not at {opensearch_spec.SPEC_DIR}")
    standin = StandIn()
    with serve(standin) as url:
        store = OpenSearchStore(Settings(store="opensearch", opensearch_url=url, opensearch_index_prefix="ragcode-test"))
        yield store
        store.close()
    assert standin.problems == [], "requests or responses that break the OpenSearch API specification"


def _opensearch() -> Iterator[Store]:
    from bot.store.opensearch import OpenSearchStore

    if not os.environ.get("OPENSEARCH_URL"):
        pytest.skip("OPENSEARCH_URL is not set; set it (and OPENSEARCH_USER/PASSWORD) to run against a cluster")
    prefix = f"ragcode-test-{uuid.uuid4().hex[:12]}"
    settings = dataclasses.replace(load_settings(dict(os.environ), toml_path=Path("/nonexistent")),
                                   store="opensearch", opensearch_index_prefix=prefix)
    store = OpenSearchStore(settings)
    try:
        yield store
    finally:
        for index in store.client.indices.get_alias(index=f"{prefix}-*"):
            store.client.indices.delete(index=index)
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend."""
    if request.param == "local":
        yield from _local(tmp_path)
    elif request.param == "opensearch-standin":
        yield from _standin()
    else:
        yield from _opensearch()


def unit_vector(seed: int, dimension: int = 8) -> np.ndarray:
    """A reproducible L2-normalized float32 vector."""
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_doc(repo: str = "acme/app", branch: str = "main", path: str = "src/app.py", name: str = "run",
             summary: str = "프로그램을 실행한다", code: str | None = None, vector: np.ndarray | None = None,
             seed: int = 0, dimension: int = 8) -> Document:
    """A document with stable id, content hash and (unless given) a seeded vector."""
    code = code if code is not None else f"def {name}():\n    return {seed}\n"
    return Document(
        id=document_id(repo, branch, path, name), repo=repo, branch=branch, path=path, name=name,
        kind="function", language="python", start_line=1, end_line=code.count("\n") + 1, code=code,
        content_hash=content_hash(code), summary=summary,
        vector=unit_vector(seed, dimension) if vector is None else vector,
    )


def assert_same(actual: Document, expected: Document) -> None:
    """Every field equal; vectors equal to float32 precision."""
    assert dataclasses.replace(actual, vector=None) == dataclasses.replace(expected, vector=None)
    assert actual.vector is not None and expected.vector is not None
    np.testing.assert_allclose(actual.vector, expected.vector, rtol=1e-6, atol=1e-6)


def test_round_trip_with_vectors(store: Store) -> None:
    docs = [make_doc(path=f"src/m{i}.py", name=f"f{i}", seed=i) for i in range(3)]
    store.write("acme/app", "main", docs, [])
    wanted = [docs[2].id, "0" * 40, docs[0].id]
    got = store.documents("acme/app", "main", wanted)
    assert [d.id for d in got] == [docs[2].id, docs[0].id]
    assert_same(got[0], docs[2])
    assert_same(got[1], docs[0])
    refs = sorted(store.refs("acme/app", "main"), key=lambda r: r.path)
    assert [(r.id, r.path, r.name, r.content_hash, r.start_line, r.end_line, r.summary_ok) for r in refs] == [
        (d.id, d.path, d.name, d.content_hash, d.start_line, d.end_line, True) for d in docs]


def test_summary_ok_flag_round_trips(store: Store) -> None:
    doc = dataclasses.replace(make_doc(), summary="run", summary_ok=False)
    store.write("acme/app", "main", [doc], [])
    assert store.documents("acme/app", "main", [doc.id])[0].summary_ok is False
    assert store.refs("acme/app", "main")[0].summary_ok is False


def test_pending_lists_only_fallback_summaries_of_the_branch(store: Store) -> None:
    waiting = dataclasses.replace(make_doc(path="a.py", name="waiting"), summary="waiting", summary_ok=False)
    done = make_doc(path="b.py", name="done", seed=2)
    elsewhere = dataclasses.replace(make_doc(branch="dev", path="a.py", name="waiting"), summary_ok=False)
    store.write("acme/app", "main", [waiting, done], [])
    store.write("acme/app", "dev", [elsewhere], [])
    assert [(ref.id, ref.summary_ok) for ref in store.pending("acme/app", "main")] == [(waiting.id, False)]
    store.write("acme/app", "main", [dataclasses.replace(waiting, summary="요약", summary_ok=True)], [])
    assert store.pending("acme/app", "main") == []


def test_upsert_replaces(store: Store) -> None:
    first = make_doc(summary="첫 번째 요약", seed=1)
    store.write("acme/app", "main", [first], [])
    second = make_doc(summary="두 번째 요약", code="def run():\n    return 2\n", seed=2)
    assert second.id == first.id
    store.write("acme/app", "main", [second], [])
    (got,) = store.documents("acme/app", "main", [first.id])
    assert_same(got, second)
    assert len(store.refs("acme/app", "main")) == 1
    assert store.vector_search("acme/app", "main", second.vector, 5)[0][0] == second.id


def test_delete_by_id(store: Store) -> None:
    docs = [make_doc(path=f"src/m{i}.py", name=f"f{i}", summary="파일을 삭제한다", seed=i) for i in range(3)]
    store.write("acme/app", "main", docs, [])
    store.write("acme/app", "main", [], [docs[1].id, "f" * 40])
    assert {r.id for r in store.refs("acme/app", "main")} == {docs[0].id, docs[2].id}
    assert store.documents("acme/app", "main", [docs[1].id]) == []
    assert docs[1].id not in {i for i, _ in store.lexical_search("acme/app", "main", "파일 삭제", 10)}
    assert docs[1].id not in {i for i, _ in store.vector_search("acme/app", "main", docs[1].vector, 10)}


def test_upsert_and_delete_in_one_write(store: Store) -> None:
    old, kept = make_doc(name="old", seed=1), make_doc(name="kept", seed=2)
    store.write("acme/app", "main", [old, kept], [])
    new = make_doc(name="new", seed=3)
    store.write("acme/app", "main", [new], [old.id])
    assert {r.name for r in store.refs("acme/app", "main")} == {"kept", "new"}


def test_refs_filtered_by_paths(store: Store) -> None:
    docs = [make_doc(path=path, name=name, seed=i) for i, (path, name) in
            enumerate([("a.py", "one"), ("a.py", "two"), ("b.py", "three"), ("c/d.py", "four")])]
    store.write("acme/app", "main", docs, [])
    assert {r.name for r in store.refs("acme/app", "main", ["a.py", "c/d.py", "missing.py"])} == {"one", "two", "four"}
    assert {r.name for r in store.refs("acme/app", "main", iter(["b.py"]))} == {"three"}
    assert store.refs("acme/app", "main", []) == []
    assert len(store.refs("acme/app", "main")) == 4


def test_state(store: Store) -> None:
    assert store.branch_state("acme/app", "main") is None
    assert store.branch_states() == []
    store.write("acme/app", "main", [make_doc(name="a", seed=1), make_doc(name="b", seed=2)], [])
    store.set_state("acme/app", "main", "c0ffee", "test-embedder", 8)
    store.write("acme/app", "dev", [make_doc(branch="dev", name="a", seed=1)], [])
    store.set_state("acme/app", "dev", "beef", "test-embedder", 8)
    state = store.branch_state("acme/app", "main")
    assert state is not None
    assert (state.repo, state.branch, state.commit, state.functions, state.embedder, state.dimension) == (
        "acme/app", "main", "c0ffee", 2, "test-embedder", 8)
    assert state.indexed_at > 0
    assert [(s.branch, s.commit) for s in store.branch_states()] == [("dev", "beef"), ("main", "c0ffee")]
    store.set_state("acme/app", "main", "d00d", "test-embedder", 8)
    assert store.branch_state("acme/app", "main").commit == "d00d"
    assert store.branch_state("acme/other", "main") is None


def test_drop_branch(store: Store) -> None:
    main = make_doc(summary="결제를 처리한다", seed=1)
    dev = make_doc(branch="dev", summary="결제를 처리한다", seed=1)
    store.write("acme/app", "main", [main], [])
    store.write("acme/app", "dev", [dev], [])
    store.set_state("acme/app", "main", "c1", "e", 8)
    store.set_state("acme/app", "dev", "c2", "e", 8)
    store.drop_branch("acme/app", "dev")
    assert store.branch_state("acme/app", "dev") is None
    assert store.refs("acme/app", "dev") == []
    assert store.documents("acme/app", "dev", [dev.id]) == []
    assert store.lexical_search("acme/app", "dev", "결제 처리", 5) == []
    assert store.vector_search("acme/app", "dev", dev.vector, 5) == []
    assert [r.id for r in store.refs("acme/app", "main")] == [main.id]
    assert store.lexical_search("acme/app", "main", "결제 처리", 5)[0][0] == main.id
    assert [s.branch for s in store.branch_states()] == ["main"]
    store.drop_branch("acme/app", "never-indexed")


def test_summary_cache(store: Store) -> None:
    assert store.cached_summaries(["model:ko:abc"]) == {}
    long_key = "model:ko:" + "x" * 600
    store.cache_summaries({"model:ko:abc": "요약 하나", "model:en:abc": "one summary", long_key: "긴 키"})
    assert store.cached_summaries(["model:ko:abc", "model:ko:missing", long_key]) == {
        "model:ko:abc": "요약 하나", long_key: "긴 키"}
    store.cache_summaries({"model:ko:abc": "요약 둘"})
    assert store.cached_summaries(["model:ko:abc"]) == {"model:ko:abc": "요약 둘"}


def test_vector_cache(store: Store) -> None:
    first, second = unit_vector(1), unit_vector(2, dimension=16)
    store.cache_vectors("embedder-a", {"k1": first})
    store.cache_vectors("embedder-b", {"k1": second})
    got = store.cached_vectors("embedder-a", ["k1", "k2"])
    assert list(got) == ["k1"]
    assert got["k1"].dtype == np.float32
    np.testing.assert_array_equal(got["k1"], first)
    np.testing.assert_array_equal(store.cached_vectors("embedder-b", ["k1"])["k1"], second)
    assert store.cached_vectors("embedder-c", ["k1"]) == {}


def _search_corpus(store: Store) -> list[Document]:
    docs = [
        make_doc(path="auth/password.py", name="check_password", summary="사용자의 비밀번호를 검증한다",
                 code="def check_password(user, raw):\n    return verify(user.hash, raw)\n", seed=1),
        make_doc(path="auth/tokens.py", name="validateUserToken", summary="토큰의 만료 시간을 확인한다",
                 code="function validateUserToken(token) {\n  return token.exp > now();\n}\n", seed=2),
        make_doc(path="billing/invoice.py", name="render_invoice", summary="청구서를 PDF로 만든다",
                 code="def render_invoice(order):\n    return pdf(order)\n", seed=3),
        make_doc(path="mail/send.py", name="send_mail", summary="이메일을 전송한다",
                 code="def send_mail(to, body):\n    smtp.send(to, body)\n", seed=4),
    ]
    store.write("acme/app", "main", docs, [])
    return docs


def test_lexical_search_korean_summary(store: Store) -> None:
    docs = _search_corpus(store)
    hits = store.lexical_search("acme/app", "main", "비밀번호 검증", 10)
    assert hits and hits[0][0] == docs[0].id
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    assert store.lexical_search("acme/app", "main", "청구서", 10)[0][0] == docs[2].id


def test_lexical_search_identifier_parts(store: Store) -> None:
    docs = _search_corpus(store)
    assert store.lexical_search("acme/app", "main", "user token", 10)[0][0] == docs[1].id
    assert store.lexical_search("acme/app", "main", "invoice", 10)[0][0] == docs[2].id
    assert store.lexical_search("acme/app", "main", "   ", 10) == []


def test_vector_search_nearest_first(store: Store) -> None:
    docs = [make_doc(path=f"m{i}.py", name=f"f{i}", seed=10 + i) for i in range(6)]
    store.write("acme/app", "main", docs, [])
    query = docs[3].vector + 0.05 * unit_vector(99)
    query = query / np.linalg.norm(query)
    hits = store.vector_search("acme/app", "main", query, 3)
    assert len(hits) == 3
    assert hits[0][0] == docs[3].id
    assert hits[0][1] == pytest.approx(float(np.dot(query, docs[3].vector)), abs=1e-3)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_repositories_never_see_each_other(store: Store) -> None:
    mine = make_doc(repo="acme/app", summary="사용자의 비밀번호를 검증한다", name="validateUserToken", seed=5)
    theirs = make_doc(repo="other/app", summary="사용자의 비밀번호를 검증한다", name="validateUserToken", seed=5)
    store.write("acme/app", "main", [mine], [])
    store.write("other/app", "main", [theirs], [])
    for query in ("비밀번호 검증", "user token"):
        assert [i for i, _ in store.lexical_search("acme/app", "main", query, 10)] == [mine.id]
    assert [i for i, _ in store.vector_search("acme/app", "main", mine.vector, 10)] == [mine.id]
    assert [r.id for r in store.refs("acme/app", "main")] == [mine.id]
    assert store.documents("acme/app", "main", [theirs.id]) == []
    assert [d.repo for d in store.documents("other/app", "main", [theirs.id, mine.id])] == ["other/app"]
    store.write("acme/app", "main", [], [theirs.id])  # an id of another repository deletes nothing
    assert [d.id for d in store.documents("other/app", "main", [theirs.id])] == [theirs.id]


def test_dimension_change(store: Store) -> None:
    """Re-embedding a branch with the same ids in another dimension replaces its vectors; others keep theirs."""
    old = [make_doc(path=f"m{i}.py", name=f"f{i}", seed=20 + i, dimension=8) for i in range(4)]
    other = make_doc(branch="dev", seed=30, dimension=8)
    store.write("acme/app", "main", old, [])
    store.write("acme/app", "dev", [other], [])
    store.set_state("acme/app", "main", "c1", "small", 8)
    store.set_state("acme/app", "dev", "c1", "small", 8)
    new = [dataclasses.replace(d, vector=unit_vector(40 + i, 16)) for i, d in enumerate(old)]
    store.write("acme/app", "main", new[:2], [])
    store.write("acme/app", "main", new[2:], [])
    store.set_state("acme/app", "main", "c2", "large", 16)
    assert len(store.refs("acme/app", "main")) == 4
    assert all(d.vector.shape == (16,) for d in store.documents("acme/app", "main", [d.id for d in old]))
    assert store.vector_search("acme/app", "main", new[1].vector, 2)[0][0] == new[1].id
    state = store.branch_state("acme/app", "main")
    assert (state.embedder, state.dimension, state.functions) == ("large", 16, 4)
    assert store.vector_search("acme/app", "dev", other.vector, 2)[0][0] == other.id
    store.drop_branch("acme/app", "dev")
    again = make_doc(branch="dev", seed=31, dimension=16)
    store.write("acme/app", "dev", [again], [])
    assert store.vector_search("acme/app", "dev", again.vector, 2)[0][0] == again.id


def test_many_documents(store: Store) -> None:
    docs = [make_doc(path=f"pkg/m{i % 40}.py", name=f"f{i}", seed=i, dimension=4) for i in range(1205)]
    store.write("acme/app", "main", docs, [])
    assert len(store.refs("acme/app", "main")) == 1205
    assert len(store.refs("acme/app", "main", [f"pkg/m{i}.py" for i in range(10)])) == 305
    ids = [d.id for d in docs[::-1]]
    assert [d.id for d in store.documents("acme/app", "main", ids)] == ids
    store.write("acme/app", "main", [], [d.id for d in docs[:1100]])
    assert len(store.refs("acme/app", "main")) == 105


def test_sample_vectors_are_a_fixed_sample_of_the_branch(store: Store) -> None:
    docs = [make_doc(path=f"m{i % 7}.py", name=f"f{i}", seed=100 + i) for i in range(30)]
    store.write("acme/app", "main", docs, [])
    store.write("acme/app", "dev", [make_doc(branch="dev", name="elsewhere", seed=7)], [])
    store.write("other/app", "main", [make_doc(repo="other/app", name="theirs", seed=8)], [])
    store.write("acme/app", "wide", [make_doc(branch="wide", name="wide", seed=9, dimension=16)], [])
    sample = store.sample_vectors("acme/app", "main", 8, 10)
    assert sample.shape == (10, 8) and sample.dtype == np.float32
    lowest = sorted(docs, key=lambda d: d.id)[:10]  # ids are hashes: the lowest ones are an even sample
    np.testing.assert_allclose(sample, np.vstack([d.vector for d in lowest]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(store.sample_vectors("acme/app", "main", 8, 10), sample)
    everything = store.sample_vectors("acme/app", "main", 8, 500)
    assert everything.shape == (30, 8)
    np.testing.assert_allclose(everything, np.vstack([d.vector for d in sorted(docs, key=lambda d: d.id)]),
                               rtol=1e-6, atol=1e-6)
    assert store.sample_vectors("acme/app", "main", 16, 10).shape == (0, 16), "only vectors of that dimension"
    assert store.sample_vectors("acme/app", "wide", 16, 10).shape == (1, 16)
    assert store.sample_vectors("acme/app", "missing", 8, 10).shape == (0, 8)
    assert store.sample_vectors("acme/app", "main", 8, 0).shape == (0, 8)


def test_ping(store: Store) -> None:
    assert store.ping() is True
