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
from bot.documents import Document, Repository, content_hash, document_id
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
        # a page size of 3 makes every multi-row read page, as it must past the cluster's result window
        store = OpenSearchStore(Settings(store="opensearch", opensearch_url=url, opensearch_index_prefix="ragcode-test",
                                         opensearch_page_size=3))
        yield store
        store.close()
    assert standin.problems == [], "requests or responses that break the OpenSearch API specification"


def _opensearch() -> Iterator[Store]:
    from bot.store.opensearch import OpenSearchStore

    if not os.environ.get("OPENSEARCH_URL"):
        pytest.skip("OPENSEARCH_URL is not set; set it (and OPENSEARCH_USER/PASSWORD) to run against a cluster")
    prefix = f"ragcode-test-{uuid.uuid4().hex[:12]}"
    settings = dataclasses.replace(load_settings(dict(os.environ)),
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


APP, OTHER, ELSEWHERE = 101, 202, 303
APP_REPO = Repository(APP, "acme/app", 7)


def unit_vector(seed: int, dimension: int = 8) -> np.ndarray:
    """A reproducible L2-normalized float32 vector."""
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_doc(repo: int = APP, branch: str = "main", path: str = "src/app.py", name: str = "run",
             summary: str = "프로그램을 실행한다", code: str | None = None, vector: np.ndarray | None = None,
             seed: int = 0, dimension: int = 8) -> Document:
    """A document with stable id, content hash and (unless given) a seeded vector."""
    code = code if code is not None else f"def {name}():\n    return {seed}\n"
    return Document(
        id=document_id(repo, branch, path, name), repo_id=repo, branch=branch, path=path, name=name,
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
    store.write(APP, "main", docs, [])
    wanted = [docs[2].id, "0" * 40, docs[0].id]
    got = store.documents(APP, "main", wanted)
    assert [d.id for d in got] == [docs[2].id, docs[0].id]
    assert_same(got[0], docs[2])
    assert_same(got[1], docs[0])
    refs = sorted(store.refs(APP, "main"), key=lambda r: r.path)
    assert [(r.id, r.path, r.name, r.content_hash, r.start_line, r.end_line, r.summary_ok) for r in refs] == [
        (d.id, d.path, d.name, d.content_hash, d.start_line, d.end_line, True) for d in docs]


def test_summary_ok_flag_round_trips(store: Store) -> None:
    doc = dataclasses.replace(make_doc(), summary="run", summary_ok=False)
    store.write(APP, "main", [doc], [])
    assert store.documents(APP, "main", [doc.id])[0].summary_ok is False
    assert store.refs(APP, "main")[0].summary_ok is False


def test_pending_lists_only_fallback_summaries_of_the_branch(store: Store) -> None:
    waiting = dataclasses.replace(make_doc(path="a.py", name="waiting"), summary="waiting", summary_ok=False)
    done = make_doc(path="b.py", name="done", seed=2)
    elsewhere = dataclasses.replace(make_doc(branch="dev", path="a.py", name="waiting"), summary_ok=False)
    store.write(APP, "main", [waiting, done], [])
    store.write(APP, "dev", [elsewhere], [])
    assert [(ref.id, ref.summary_ok) for ref in store.pending(APP, "main")] == [(waiting.id, False)]
    store.write(APP, "main", [dataclasses.replace(waiting, summary="요약", summary_ok=True)], [])
    assert store.pending(APP, "main") == []


def test_upsert_replaces(store: Store) -> None:
    first = make_doc(summary="첫 번째 요약", seed=1)
    store.write(APP, "main", [first], [])
    second = make_doc(summary="두 번째 요약", code="def run():\n    return 2\n", seed=2)
    assert second.id == first.id
    store.write(APP, "main", [second], [])
    (got,) = store.documents(APP, "main", [first.id])
    assert_same(got, second)
    assert len(store.refs(APP, "main")) == 1
    assert store.vector_search(APP, "main", second.vector, 5)[0][0] == second.id


def test_delete_by_id(store: Store) -> None:
    docs = [make_doc(path=f"src/m{i}.py", name=f"f{i}", summary="파일을 삭제한다", seed=i) for i in range(3)]
    store.write(APP, "main", docs, [])
    store.write(APP, "main", [], [docs[1].id, "f" * 40])
    assert {r.id for r in store.refs(APP, "main")} == {docs[0].id, docs[2].id}
    assert store.documents(APP, "main", [docs[1].id]) == []
    assert docs[1].id not in {i for i, _ in store.lexical_search(APP, "main", "파일 삭제", 10)}
    assert docs[1].id not in {i for i, _ in store.vector_search(APP, "main", docs[1].vector, 10)}


def test_upsert_and_delete_in_one_write(store: Store) -> None:
    old, kept = make_doc(name="old", seed=1), make_doc(name="kept", seed=2)
    store.write(APP, "main", [old, kept], [])
    new = make_doc(name="new", seed=3)
    store.write(APP, "main", [new], [old.id])
    assert {r.name for r in store.refs(APP, "main")} == {"kept", "new"}


def test_refs_filtered_by_paths(store: Store) -> None:
    docs = [make_doc(path=path, name=name, seed=i) for i, (path, name) in
            enumerate([("a.py", "one"), ("a.py", "two"), ("b.py", "three"), ("c/d.py", "four")])]
    store.write(APP, "main", docs, [])
    assert {r.name for r in store.refs(APP, "main", ["a.py", "c/d.py", "missing.py"])} == {"one", "two", "four"}
    assert {r.name for r in store.refs(APP, "main", iter(["b.py"]))} == {"three"}
    assert store.refs(APP, "main", []) == []
    assert len(store.refs(APP, "main")) == 4


def test_state(store: Store) -> None:
    assert store.branch_state(APP, "main") is None
    assert store.branch_states(APP) == []
    store.write(APP, "main", [make_doc(name="a", seed=1), make_doc(name="b", seed=2)], [])
    store.set_state(APP_REPO, "main", "c0ffee", "test-embedder", 8)
    store.write(APP, "dev", [make_doc(branch="dev", name="a", seed=1)], [])
    store.set_state(APP_REPO, "dev", "beef", "test-embedder", 8)
    state = store.branch_state(APP, "main")
    assert state is not None
    assert (state.repo_id, state.repo, state.installation, state.branch, state.commit, state.functions,
            state.embedder, state.dimension) == (APP, "acme/app", 7, "main", "c0ffee", 2, "test-embedder", 8)
    assert state.indexed_at > 0
    assert [(s.branch, s.commit) for s in store.branch_states(APP)] == [("dev", "beef"), ("main", "c0ffee")]
    store.set_state(APP_REPO, "main", "d00d", "test-embedder", 8)
    assert store.branch_state(APP, "main").commit == "d00d"
    assert store.branch_state(ELSEWHERE, "main") is None


def test_drop_branch(store: Store) -> None:
    main = make_doc(summary="결제를 처리한다", seed=1)
    dev = make_doc(branch="dev", summary="결제를 처리한다", seed=1)
    store.write(APP, "main", [main], [])
    store.write(APP, "dev", [dev], [])
    store.set_state(APP_REPO, "main", "c1", "e", 8)
    store.set_state(APP_REPO, "dev", "c2", "e", 8)
    store.drop_branch(APP, "dev")
    assert store.branch_state(APP, "dev") is None
    assert store.refs(APP, "dev") == []
    assert store.documents(APP, "dev", [dev.id]) == []
    assert store.lexical_search(APP, "dev", "결제 처리", 5) == []
    assert store.vector_search(APP, "dev", dev.vector, 5) == []
    assert [r.id for r in store.refs(APP, "main")] == [main.id]
    assert store.lexical_search(APP, "main", "결제 처리", 5)[0][0] == main.id
    assert [s.branch for s in store.branch_states(APP)] == ["main"]
    store.drop_branch(APP, "never-indexed")


def test_summary_cache(store: Store) -> None:
    assert store.cached_summaries(APP, ["model:ko:abc"]) == {}
    long_key = "model:ko:" + "x" * 600
    store.cache_summaries(APP, {"model:ko:abc": "요약 하나", "model:en:abc": "one summary", long_key: "긴 키"})
    assert store.cached_summaries(APP, ["model:ko:abc", "model:ko:missing", long_key]) == {
        "model:ko:abc": "요약 하나", long_key: "긴 키"}
    store.cache_summaries(APP, {"model:ko:abc": "요약 둘"})
    assert store.cached_summaries(APP, ["model:ko:abc"]) == {"model:ko:abc": "요약 둘"}
    assert store.cached_summaries(OTHER, ["model:ko:abc", long_key]) == {}, "another repository's cache is its own"


def test_vector_cache(store: Store) -> None:
    first, second = unit_vector(1), unit_vector(2, dimension=16)
    store.cache_vectors(APP, "embedder-a", {"k1": first})
    store.cache_vectors(APP, "embedder-b", {"k1": second})
    got = store.cached_vectors(APP, "embedder-a", ["k1", "k2"])
    assert list(got) == ["k1"]
    assert got["k1"].dtype == np.float32
    np.testing.assert_array_equal(got["k1"], first)
    np.testing.assert_array_equal(store.cached_vectors(APP, "embedder-b", ["k1"])["k1"], second)
    assert store.cached_vectors(APP, "embedder-c", ["k1"]) == {}
    assert store.cached_vectors(OTHER, "embedder-a", ["k1"]) == {}, "another repository's cache is its own"


def _search_corpus(store: Store) -> list[Document]:
    docs = _search_corpus_docs()
    store.write(APP, "main", docs, [])
    return docs


def _search_corpus_docs() -> list[Document]:
    return [
        make_doc(path="auth/password.py", name="check_password", summary="사용자의 비밀번호를 검증한다",
                 code="def check_password(user, raw):\n    return verify(user.hash, raw)\n", seed=1),
        make_doc(path="auth/tokens.py", name="validateUserToken", summary="토큰의 만료 시간을 확인한다",
                 code="function validateUserToken(token) {\n  return token.exp > now();\n}\n", seed=2),
        make_doc(path="billing/invoice.py", name="render_invoice", summary="청구서를 PDF로 만든다",
                 code="def render_invoice(order):\n    return pdf(order)\n", seed=3),
        make_doc(path="mail/send.py", name="send_mail", summary="이메일을 전송한다",
                 code="def send_mail(to, body):\n    smtp.send(to, body)\n", seed=4),
    ]


def test_lexical_search_korean_summary(store: Store) -> None:
    docs = _search_corpus(store)
    hits = store.lexical_search(APP, "main", "비밀번호 검증", 10)
    assert hits and hits[0][0] == docs[0].id
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    assert store.lexical_search(APP, "main", "청구서", 10)[0][0] == docs[2].id


def test_lexical_search_identifier_parts(store: Store) -> None:
    docs = _search_corpus(store)
    assert store.lexical_search(APP, "main", "user token", 10)[0][0] == docs[1].id
    assert store.lexical_search(APP, "main", "invoice", 10)[0][0] == docs[2].id
    assert store.lexical_search(APP, "main", "   ", 10) == []


def test_vector_search_nearest_first(store: Store) -> None:
    docs = [make_doc(path=f"m{i}.py", name=f"f{i}", seed=10 + i) for i in range(6)]
    store.write(APP, "main", docs, [])
    query = docs[3].vector + 0.05 * unit_vector(99)
    query = query / np.linalg.norm(query)
    hits = store.vector_search(APP, "main", query, 3)
    assert len(hits) == 3
    assert hits[0][0] == docs[3].id
    assert hits[0][1] == pytest.approx(float(np.dot(query, docs[3].vector)), abs=1e-3)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_repositories_never_see_each_other(store: Store) -> None:
    mine = make_doc(repo=APP, summary="사용자의 비밀번호를 검증한다", name="validateUserToken", seed=5)
    theirs = make_doc(repo=OTHER, summary="사용자의 비밀번호를 검증한다", name="validateUserToken", seed=5)
    store.write(APP, "main", [mine], [])
    store.write(OTHER, "main", [theirs], [])
    for query in ("비밀번호 검증", "user token"):
        assert [i for i, _ in store.lexical_search(APP, "main", query, 10)] == [mine.id]
    assert [i for i, _ in store.vector_search(APP, "main", mine.vector, 10)] == [mine.id]
    assert [r.id for r in store.refs(APP, "main")] == [mine.id]
    assert store.documents(APP, "main", [theirs.id]) == []
    assert [d.repo_id for d in store.documents(OTHER, "main", [theirs.id, mine.id])] == [OTHER]
    store.write(APP, "main", [], [theirs.id])  # an id of another repository deletes nothing
    assert [d.id for d in store.documents(OTHER, "main", [theirs.id])] == [theirs.id]


def test_dimension_change(store: Store) -> None:
    """Re-embedding a branch with the same ids in another dimension replaces its vectors; others keep theirs."""
    old = [make_doc(path=f"m{i}.py", name=f"f{i}", seed=20 + i, dimension=8) for i in range(4)]
    other = make_doc(branch="dev", seed=30, dimension=8)
    store.write(APP, "main", old, [])
    store.write(APP, "dev", [other], [])
    store.set_state(APP_REPO, "main", "c1", "small", 8)
    store.set_state(APP_REPO, "dev", "c1", "small", 8)
    new = [dataclasses.replace(d, vector=unit_vector(40 + i, 16)) for i, d in enumerate(old)]
    store.write(APP, "main", new[:2], [])
    store.write(APP, "main", new[2:], [])
    store.set_state(APP_REPO, "main", "c2", "large", 16)
    assert len(store.refs(APP, "main")) == 4
    assert all(d.vector.shape == (16,) for d in store.documents(APP, "main", [d.id for d in old]))
    assert store.vector_search(APP, "main", new[1].vector, 2)[0][0] == new[1].id
    state = store.branch_state(APP, "main")
    assert (state.embedder, state.dimension, state.functions) == ("large", 16, 4)
    assert store.vector_search(APP, "dev", other.vector, 2)[0][0] == other.id
    store.drop_branch(APP, "dev")
    again = make_doc(branch="dev", seed=31, dimension=16)
    store.write(APP, "dev", [again], [])
    assert store.vector_search(APP, "dev", again.vector, 2)[0][0] == again.id


def test_many_documents(store: Store) -> None:
    docs = [make_doc(path=f"pkg/m{i % 40}.py", name=f"f{i}", seed=i, dimension=4) for i in range(1205)]
    store.write(APP, "main", docs, [])
    assert len(store.refs(APP, "main")) == 1205
    assert len(store.refs(APP, "main", [f"pkg/m{i}.py" for i in range(10)])) == 305
    ids = [d.id for d in docs[::-1]]
    assert [d.id for d in store.documents(APP, "main", ids)] == ids
    store.write(APP, "main", [], [d.id for d in docs[:1100]])
    assert len(store.refs(APP, "main")) == 105


def _index_repository(store: Store, repo: Repository, branches: tuple[str, ...] = ("main",)) -> list[Document]:
    docs = []
    for branch in branches:
        doc = make_doc(repo=repo.id, branch=branch, summary="결제를 처리한다", seed=repo.id)
        store.write(repo.id, branch, [doc], [])
        store.set_state(repo, branch, f"c{repo.id}", "e", 8)
        docs.append(doc)
    store.cache_summaries(repo.id, {"m|ko|h": f"summary of {repo.id}"})
    store.cache_vectors(repo.id, "e", {"k": unit_vector(repo.id)})
    return docs


def test_state_reads_are_scoped_to_one_repository_however_many_there_are(store: Store) -> None:
    repos = [Repository(1000 + n, f"org{n % 3}/repo", n) for n in range(8)]
    for repo in repos:
        _index_repository(store, repo, ("main", "dev"))
    target = repos[5]
    assert {(s.repo_id, s.branch) for s in store.branch_states(target.id)} == {(target.id, "main"), (target.id, "dev")}
    assert {s.installation for s in store.branch_states(target.id)} == {5}
    assert sorted(store.repository_ids("org2/repo")) == [1002, 1005]
    assert store.repository_ids("nobody/here") == []
    everything = list(store.all_branch_states())
    assert len(everything) == 16 and {s.repo_id for s in everything} == {r.id for r in repos}


def test_rename_keeps_the_index_under_the_id(store: Store) -> None:
    repo = Repository(77, "acme/old-name", 3)
    [doc] = _index_repository(store, repo)
    store.rename_repository(77, "acme/new-name")
    assert [s.repo for s in store.branch_states(77)] == ["acme/new-name"]
    assert store.repository_ids("acme/new-name") == [77] and store.repository_ids("acme/old-name") == []
    assert [d.id for d in store.documents(77, "main", [doc.id])] == [doc.id]


def test_forget_removes_everything_of_one_repository_only(store: Store) -> None:
    gone, kept = Repository(501, "acme/secret", 9), Repository(502, "acme/public", 9)
    gone_docs = _index_repository(store, gone, ("main", "dev"))
    kept_docs = _index_repository(store, kept)
    # a first run that failed before recording its commit leaves documents but no state
    unrecorded = make_doc(repo=gone.id, branch="wip", name="half_done", seed=3)
    store.write(gone.id, "wip", [unrecorded], [])
    store.forget_repository(gone.id)
    assert store.branch_states(gone.id) == [] and store.repository_ids("acme/secret") == []
    for doc in [*gone_docs, unrecorded]:
        assert store.documents(gone.id, doc.branch, [doc.id]) == []
        assert store.refs(gone.id, doc.branch) == []
        assert store.lexical_search(gone.id, doc.branch, "결제 처리", 5) == []
        assert store.vector_search(gone.id, doc.branch, doc.vector, 5) == []
    assert store.cached_summaries(gone.id, ["m|ko|h"]) == {}
    assert store.cached_vectors(gone.id, "e", ["k"]) == {}
    assert [d.id for d in store.documents(kept.id, "main", [kept_docs[0].id])] == [kept_docs[0].id]
    assert store.cached_summaries(kept.id, ["m|ko|h"]) == {"m|ko|h": "summary of 502"}
    assert [s.repo_id for s in store.all_branch_states()] == [kept.id]
    store.forget_repository(gone.id)  # forgetting twice is fine


def test_documents_written_before_their_vectors_are_searchable_by_keyword_then_get_vectors(store: Store) -> None:
    docs = [dataclasses.replace(d, vector=None) for d in _search_corpus_docs()]
    store.write(APP, "main", docs, [], dimension=8)
    store.set_state(APP_REPO, "main", "c1", "e", 8, complete=False)
    state = store.branch_state(APP, "main")
    assert state is not None and state.complete is False and state.functions == 4
    assert store.lexical_search(APP, "main", "비밀번호 검증", 10)[0][0] == docs[0].id
    assert store.vector_search(APP, "main", unit_vector(1), 10) == []
    waiting = store.without_vectors(APP, "main", 3)
    assert len(waiting) == 3 and {(i, n, s) for i, n, s in waiting} <= {(d.id, d.name, d.summary) for d in docs}
    store.set_vectors(APP, "main", {doc_id: unit_vector(n) for n, (doc_id, _, _) in enumerate(waiting)})
    rest = store.without_vectors(APP, "main", 10)
    assert [i for i, _, _ in rest] == [d.id for d in docs if d.id not in {i for i, _, _ in waiting}]
    store.set_vectors(APP, "main", {rest[0][0]: unit_vector(7)})
    assert store.without_vectors(APP, "main", 10) == []
    assert store.vector_search(APP, "main", unit_vector(7), 1)[0][0] == rest[0][0]
    [doc] = store.documents(APP, "main", [rest[0][0]])
    assert doc.summary == next(d.summary for d in docs if d.id == doc.id), "the rest of the document is unchanged"
    store.set_vectors(APP, "main", {rest[0][0]: unit_vector(8)})  # a new vector replaces the old one
    assert store.vector_search(APP, "main", unit_vector(8), 1) == [(rest[0][0], pytest.approx(1.0, abs=1e-3))]
    assert len(store.vector_search(APP, "main", unit_vector(8), 10)) == 4
    store.set_state(APP_REPO, "main", "c1", "e", 8)
    assert store.branch_state(APP, "main").complete is True
    assert store.lexical_search(APP, "main", "비밀번호 검증", 10)[0][0] == docs[0].id


def test_sample_vectors_are_a_fixed_sample_of_the_branch(store: Store) -> None:
    docs = [make_doc(path=f"m{i % 7}.py", name=f"f{i}", seed=100 + i) for i in range(30)]
    store.write(APP, "main", docs, [])
    store.write(APP, "dev", [make_doc(branch="dev", name="elsewhere", seed=7)], [])
    store.write(OTHER, "main", [make_doc(repo=OTHER, name="theirs", seed=8)], [])
    store.write(APP, "wide", [make_doc(branch="wide", name="wide", seed=9, dimension=16)], [])
    sample = store.sample_vectors(APP, "main", 8, 10)
    assert sample.shape == (10, 8) and sample.dtype == np.float32
    lowest = sorted(docs, key=lambda d: d.id)[:10]  # ids are hashes: the lowest ones are an even sample
    np.testing.assert_allclose(sample, np.vstack([d.vector for d in lowest]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(store.sample_vectors(APP, "main", 8, 10), sample)
    everything = store.sample_vectors(APP, "main", 8, 500)
    assert everything.shape == (30, 8)
    np.testing.assert_allclose(everything, np.vstack([d.vector for d in sorted(docs, key=lambda d: d.id)]),
                               rtol=1e-6, atol=1e-6)
    assert store.sample_vectors(APP, "main", 16, 10).shape == (0, 16), "only vectors of that dimension"
    assert store.sample_vectors(APP, "wide", 16, 10).shape == (1, 16)
    assert store.sample_vectors(APP, "missing", 8, 10).shape == (0, 8)
    assert store.sample_vectors(APP, "main", 8, 0).shape == (0, 8)


def test_ping(store: Store) -> None:
    assert store.ping() is True


def test_calls_round_trip_and_find_their_callers(store: Store) -> None:
    apply = make_doc(path="shop/pricing.py", name="apply_coupon", seed=1)
    total = dataclasses.replace(make_doc(path="shop/cart.py", name="Cart.total", seed=2),
                                calls=("apply_coupon", "apply_coupon@shop/pricing", "round"))
    audit = dataclasses.replace(make_doc(path="audit.py", name="audit", seed=3), calls=("Cart.total", "total"))
    elsewhere = dataclasses.replace(make_doc(branch="dev", path="shop/cart.py", name="Cart.total", seed=2),
                                    calls=("apply_coupon",))
    theirs = dataclasses.replace(make_doc(repo=OTHER, path="x.py", name="x", seed=4), calls=("apply_coupon",))
    store.write(APP, "main", [apply, total, audit], [])
    store.write(APP, "dev", [elsewhere], [])
    store.write(OTHER, "main", [theirs], [])
    (got,) = store.documents(APP, "main", [total.id])
    assert got.calls == ("apply_coupon", "apply_coupon@shop/pricing", "round")
    assert {ref.id: ref.calls for ref in store.refs(APP, "main", ["shop/cart.py"])} == {total.id: total.calls}
    assert [ref.id for ref in store.callers(APP, "main", ["apply_coupon"])] == [total.id]
    assert {ref.id for ref in store.callers(APP, "main", ["total", "apply_coupon", "nobody"])} == {total.id, audit.id}
    assert store.callers(APP, "main", ["apply"]) == [], "a whole name, not a part of one"
    assert store.callers(APP, "main", ["apply_coupon@shop/pricing"])[0].id == total.id
    assert store.callers(APP, "main", []) == []
    assert len(store.callers(APP, "main", ["total", "apply_coupon"], limit=1)) == 1
    store.write(APP, "main", [dataclasses.replace(total, calls=())], [])
    assert store.callers(APP, "main", ["apply_coupon"]) == [], "calls are replaced with the document"


def test_find_names_by_qualified_name_or_its_last_parts(store: Store) -> None:
    docs = {name: make_doc(path=path, name=name, seed=i) for i, (path, name) in enumerate([
        ("shop/orders.py", "Ledger.record"), ("shop/orders.py", "record_all"), ("a.py", "outer.<locals>.record"),
        ("long.py", "migrate#1"), ("long.py", "migrate#2"), ("odd.py", "weird*name"), ("odd.py", "weirdXname"),
        ("x.py", "Other.Ledger.record")])}
    store.write(APP, "main", list(docs.values()), [])
    store.write(APP, "dev", [make_doc(branch="dev", name="record")], [])
    store.write(OTHER, "main", [make_doc(repo=OTHER, name="record")], [])

    def names(*wanted: str) -> set[str]:
        return {ref.name for ref in store.find_names(APP, "main", list(wanted))}

    assert names("record") == {"Ledger.record", "outer.<locals>.record", "Other.Ledger.record"}
    assert names("Ledger.record") == {"Ledger.record", "Other.Ledger.record"}
    assert names("migrate") == {"migrate#1", "migrate#2"}
    assert names("weird*name") == {"weird*name"}, "wildcard characters in a name are literal"
    assert names("ledger.record", "cord", "nothing") == set()
    assert names() == set()
    assert len(store.find_names(APP, "main", ["record", "migrate"], limit=2)) == 2
    assert {ref.path for ref in store.find_names(APP, "main", ["record_all"])} == {"shop/orders.py"}


def test_find_paths_by_whole_trailing_components(store: Store) -> None:
    store.write(APP, "main", [make_doc(path="src/shop/pricing.py", name="a", seed=1),
                              make_doc(path="web/cart[1].js", name="b", seed=2)], [])
    store.write(APP, "dev", [make_doc(branch="dev", path="dev_only.py", name="c", seed=3)], [])
    asked = ["src/shop/pricing.py", "shop/pricing.py", "pricing.py", "/shop/pricing.py", "ricing.py", "shop/",
             "src/", "rc/", "web/cart[1].js", "cart?1?.js", "dev_only.py", "missing.py", ""]
    assert store.find_paths(APP, "main", asked) == {"src/shop/pricing.py", "shop/pricing.py", "pricing.py",
                                                    "/shop/pricing.py", "shop/", "src/", "web/cart[1].js"}
    assert store.find_paths(OTHER, "main", ["pricing.py"]) == set()


def test_overlays_are_recorded_per_scope_and_dropped_with_it(store: Store) -> None:
    from bot.documents import Overlay, overlay_branch

    overlay = Overlay(repo_id=APP, number=7, base="main", head="b" * 40, merge_base="a" * 40,
                      shadowed=("shop/pricing.py", "old/name.py"), fork=True)
    assert store.overlay(APP, overlay_branch(7)) is None
    store.set_overlay(overlay)
    store.set_overlay(Overlay(repo_id=OTHER, number=7, base="main", head="c" * 40, merge_base="a" * 40))
    assert store.overlay(APP, overlay_branch(7)) == overlay
    assert store.overlay(APP, overlay_branch(8)) is None and store.overlay(ELSEWHERE, overlay_branch(7)) is None
    moved = dataclasses.replace(overlay, head="d" * 40, shadowed=("shop/pricing.py",))
    store.set_overlay(moved)
    assert store.overlay(APP, overlay_branch(7)) == moved
    doc = make_doc(branch=overlay_branch(7), path="shop/pricing.py", name="apply_coupon")
    store.write(APP, overlay_branch(7), [doc], [])
    store.set_state(APP_REPO, overlay_branch(7), "d" * 40, "e", 8)
    store.drop_branch(APP, overlay_branch(7))
    assert store.overlay(APP, overlay_branch(7)) is None and store.refs(APP, overlay_branch(7)) == []
    assert store.overlay(OTHER, overlay_branch(7)) is not None
    store.forget_repository(OTHER)
    assert store.overlay(OTHER, overlay_branch(7)) is None
