"""Retrieval: lexical and vector candidates, fused, re-ranked with Faiss, cut at a relevance threshold."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np

from bot.documents import Hit
from bot.runtime import Runtime

RRF_K = 5  # reciprocal-rank constant: small, so the top ranks of each list dominate (benchmarks/bench_quality.py)
LEXICAL_BONUS = 0.05  # most that keyword agreement adds to the cosine similarity
PATH_BOOST = 0.02  # added for functions in the files of the pull request the command came from


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


def retrieve(
    runtime: Runtime,
    repo_id: int,
    branch: str,
    query: str,
    *,
    k: int | None = None,
    boost_paths: Collection[str] = (),
    min_score: float | None = None,
) -> list[Hit]:
    """The ``k`` most relevant functions of one repository branch above the relevance threshold, best first."""
    settings, store = runtime.settings, runtime.store
    k = k or settings.top_k
    threshold = settings.min_score if min_score is None else min_score
    query_vector = runtime.embedder.embed_query(query)
    lexical = store.lexical_search(repo_id, branch, query, settings.candidates)
    vector = store.vector_search(repo_id, branch, query_vector, settings.candidates)
    fused = fuse(lexical, vector, settings.lexical_weight, settings.vector_weight)
    if not fused:
        return []
    candidates = sorted(fused, key=fused.__getitem__, reverse=True)[: settings.candidates]
    documents, vectors = [], []
    for document in store.documents(repo_id, branch, candidates):
        if document.vector is not None:
            documents.append(document)
            vectors.append(document.vector)
    if not documents:
        return []
    similarity = rerank(query_vector, np.vstack(vectors))
    lexical_rank = {doc_id: rank for rank, (doc_id, _) in enumerate(lexical, 1)}
    vector_rank = {doc_id: rank for rank, (doc_id, _) in enumerate(vector, 1)}
    best_fused = max(fused[d.id] for d in documents)
    boosted = set(boost_paths)
    hits = []
    for document, cosine in zip(documents, similarity, strict=True):
        score = float(cosine) + LEXICAL_BONUS * fused[document.id] / best_fused * (document.id in lexical_rank)
        if document.path in boosted:
            score += PATH_BOOST
        hits.append(Hit(document=document, score=round(min(score, 1.0), 4),
                        lexical_rank=lexical_rank.get(document.id), vector_rank=vector_rank.get(document.id)))
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return [hit for hit in hits if hit.score >= threshold][:k]


def permalink(html_url: str, commit: str, path: str, start_line: int, end_line: int) -> str:
    """Link to the exact lines of ``path`` at ``commit`` on the repository's web page (empty without a page)."""
    if not html_url:
        return ""
    return f"{html_url.rstrip('/')}/blob/{commit}/{quote(path)}#L{start_line}-L{end_line}"


def hit_json(hit: Hit, html_url: str, commit: str) -> dict[str, Any]:
    """One result as the ``search --json`` contract describes it."""
    d = hit.document
    return {"path": d.path, "name": d.name, "kind": d.kind, "language": d.language, "start_line": d.start_line,
            "end_line": d.end_line, "score": hit.score, "summary": d.summary,
            "permalink": permalink(html_url, commit, d.path, d.start_line, d.end_line)}
