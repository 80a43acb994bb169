"""Retrieval: lexical and vector candidates, fused, re-ranked with Faiss, scored on a calibrated scale and cut."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np

from bot.commands.calibrate import calibration
from bot.commands.testcode import is_test_code
from bot.documents import Document, Hit, Overlay
from bot.indexer.plan import embedding_text
from bot.runtime import Runtime
from bot.store.base import Store

RRF_K = 5  # reciprocal-rank constant: small, so the top ranks of each list dominate (benchmarks/bench_quality.py)
# Evidence is the calibrated similarity (standard deviations above the backgrounds, see calibrate.py) plus these
# bonuses, all in the same unit; the constants were chosen once on benchmarks/bench_quality.py for every embedder.
LEXICAL_BONUS = 2.0  # most that keyword agreement adds
PATH_BOOST = 1.0  # added for functions in the files of the pull request the command came from
CUT = 4.75  # evidence at which a result scores 0.5: a request is answered only if its best result gets there
LIST_FLOOR = 0.15  # once answered, results scoring below this are left out (evidence 3.0)
EMBED_AT_QUERY = 16  # candidates without a vector yet (an index still being completed) embedded per query


def fuse(lexical: list[tuple[str, float]], vector: list[tuple[str, float]], lexical_weight: float = 1.0,
         vector_weight: float = 1.0) -> dict[str, float]:
    """Weighted reciprocal-rank fusion of two ranked id lists."""
    fused: dict[str, float] = {}
    for weight, ranking in ((lexical_weight, lexical), (vector_weight, vector)):
        for rank, (doc_id, _) in enumerate(ranking, 1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (RRF_K + rank)
    return fused


def rerank(query_vector: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Inner product of each candidate with the query, computed by an exact Faiss index over the candidates."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, order = index.search(np.asarray(query_vector, dtype=np.float32).reshape(1, -1), len(vectors))
    similarity = np.empty(len(vectors), dtype=np.float32)
    similarity[order[0]] = scores[0]
    return similarity


def score_of(evidence: float) -> float:
    """The reported score, from 0 to 1: 0.5 at the cut, rising towards 1 with each unit of evidence above it."""
    return 1.0 / (1.0 + math.exp(min(CUT - evidence, 700.0)))


def relevant(hits: list[Hit], min_score: float | None) -> list[Hit]:
    """Hits (best first) that pass the cut: a fixed ``min_score``, else the calibrated one."""
    if min_score is not None:
        return [hit for hit in hits if hit.score >= min_score]
    if not hits or hits[0].score < 0.5:
        return []
    return [hit for hit in hits if hit.score >= LIST_FLOOR]


def order_tests(hits: list[Hit], tests: str) -> list[Hit]:
    """``demote``: test code after every implementation; ``exclude``: without it; ``include``: as ranked."""
    if tests == "include":
        return hits
    if tests == "exclude":
        return [hit for hit in hits if not is_test_code(hit.document.path, hit.document.name)]
    return sorted(hits, key=lambda hit: is_test_code(hit.document.path, hit.document.name))


def retrieve(
    runtime: Runtime,
    repo_id: int,
    branch: str,
    query: str,
    *,
    k: int | None = None,
    boost_paths: Collection[str] = (),
    min_score: float | None = None,
    tests: str | None = None,
    overlay: Overlay | None = None,
) -> list[Hit]:
    """The ``k`` most relevant functions of one repository branch that pass the relevance cut, best first.

    ``min_score`` (else ``RAGCODE_MIN_SCORE``) forces a fixed cut on the score; unset, the cut is calibrated.
    ``tests`` (else ``RAGCODE_TESTS``) says how test code ranks. With a pull request's ``overlay`` (on ``branch``,
    its base), its functions rank together with the base's, whose functions in the paths it shadows are left out.
    """
    settings, store = runtime.settings, runtime.store
    k = k or settings.top_k
    min_score = settings.min_score if min_score is None else min_score
    query_vector = runtime.embedder.embed_query(query)
    if overlay is None:
        lexical = store.lexical_search(repo_id, branch, query, settings.candidates)
        vector = store.vector_search(repo_id, branch, query_vector, settings.candidates)
        loaded = None
    else:
        lexical, vector, loaded = _with_overlay(store, repo_id, branch, overlay, query, query_vector,
                                                settings.candidates)
    fused = fuse(lexical, vector, settings.lexical_weight, settings.vector_weight)
    if not fused:
        return []
    candidates = sorted(fused, key=fused.__getitem__, reverse=True)[: settings.candidates]
    documents = store.documents(repo_id, branch, candidates) if loaded is None else [loaded[i] for i in candidates]
    # While a first index is still filling in vectors, the best keyword candidates without one are embedded
    # now, so the repository answers before its vectors are done.
    unembedded = [d for d in documents if d.vector is None][:EMBED_AT_QUERY]
    if unembedded:
        fresh = runtime.embedder.embed_documents([embedding_text(d.name, d.summary) for d in unembedded])
        for document, fresh_vector in zip(unembedded, fresh, strict=True):
            document.vector = fresh_vector
    documents = [d for d in documents if d.vector is not None and d.vector.shape[-1] == query_vector.shape[-1]]
    if not documents:
        return []
    vectors = [d.vector for d in documents if d.vector is not None]
    similarity = rerank(query_vector, np.vstack(vectors))
    standardized = calibration(runtime, repo_id, branch, query_vector.shape[-1]).standardize(query_vector, similarity)
    lexical_rank = {doc_id: rank for rank, (doc_id, _) in enumerate(lexical, 1)}
    vector_rank = {doc_id: rank for rank, (doc_id, _) in enumerate(vector, 1)}
    best_fused = max(fused[d.id] for d in documents)
    boosted = set(boost_paths)
    hits = []
    for document, z in zip(documents, standardized, strict=True):
        evidence = float(z) + LEXICAL_BONUS * fused[document.id] / best_fused * (document.id in lexical_rank)
        if document.path in boosted:
            evidence += PATH_BOOST
        head = overlay.head if overlay is not None and document.branch == overlay.branch else ""
        hits.append(Hit(document=document, score=round(score_of(evidence), 4), lexical_rank=lexical_rank.get(document.id),
                        vector_rank=vector_rank.get(document.id), commit=head))
    hits.sort(key=lambda hit: hit.score, reverse=True)
    mode = tests or settings.tests
    if mode == "exclude":
        hits = order_tests(hits, mode)  # so the cut judges implementations alone
    return order_tests(relevant(hits, min_score), mode)[:k]


def _with_overlay(store: Store, repo_id: int, branch: str, overlay: Overlay, query: str, query_vector: np.ndarray,
                  limit: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]], dict[str, Document]]:
    """Lexical and vector candidates of the base branch and the overlay ranked together (both scopes share one
    index, so their scores compare), without the base's functions in the paths the overlay shadows."""
    lexical: list[tuple[str, float]] = []
    vector: list[tuple[str, float]] = []
    loaded: dict[str, Document] = {}
    for scope in (branch, overlay.branch):
        found_lexical = store.lexical_search(repo_id, scope, query, limit)
        found_vector = store.vector_search(repo_id, scope, query_vector, limit)
        ids = list(dict.fromkeys(doc_id for doc_id, _ in [*found_lexical, *found_vector]))
        loaded.update((doc.id, doc) for doc in store.documents(repo_id, scope, ids))
        lexical += found_lexical
        vector += found_vector
    hidden = set(overlay.shadowed)
    shown = {doc_id for doc_id, doc in loaded.items() if doc.branch == overlay.branch or doc.path not in hidden}
    lexical = sorted((pair for pair in lexical if pair[0] in shown), key=lambda pair: -pair[1])[:limit]
    vector = sorted((pair for pair in vector if pair[0] in shown), key=lambda pair: -pair[1])[:limit]
    return lexical, vector, loaded


def permalink(html_url: str, commit: str, path: str, start_line: int, end_line: int) -> str:
    """Link to the exact lines of ``path`` at ``commit`` on the repository's web page (empty without a page)."""
    if not html_url:
        return ""
    return f"{html_url.rstrip('/')}/blob/{commit}/{quote(path)}#L{start_line}-L{end_line}"


def hit_json(hit: Hit, html_url: str, commit: str) -> dict[str, Any]:
    """One result as the ``search --json`` contract describes it (a related function also says how it relates)."""
    d = hit.document
    result = {"path": d.path, "name": d.name, "kind": d.kind, "language": d.language, "start_line": d.start_line,
              "end_line": d.end_line, "score": hit.score, "summary": d.summary,
              "permalink": permalink(html_url, hit.commit or commit, d.path, d.start_line, d.end_line)}
    if hit.relation:
        result |= {"relation": hit.relation, "related_to": hit.related_to}
    return result
