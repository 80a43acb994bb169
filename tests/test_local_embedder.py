"""The bundled embedder's worker processes: the same vectors as in-process, at a lower CPU priority."""

from __future__ import annotations

import os

import numpy as np

from bot.embed import local
from bot.embed.local import LocalEmbedder


def test_large_batches_go_to_worker_processes_and_give_the_same_vectors():
    texts = [f"함수 {n}번은 주문 {n}개를 처리한다 (order handler number {n})" for n in range(local._POOL_MIN + 5)]
    alone, pooled = LocalEmbedder(processes=1), LocalEmbedder(processes=2)
    try:
        expected = alone.embed_documents(texts)
        got = pooled.embed_documents(texts)
        assert got.shape == (len(texts), 384)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        pool = pooled._pool
        assert pool is not None and pool._max_workers == 2
        niceness = list(pool.map(_niceness, range(4)))
        assert all(value >= os.nice(0) + local._WORKER_NICENESS for value in niceness), "workers yield to searches"
        np.testing.assert_allclose(pooled.embed_query("주문 처리"), alone.embed_query("주문 처리"), rtol=1e-5,
                                   atol=1e-5)
    finally:
        pooled.close()
        alone.close()
    assert pooled._pool is None


def _niceness(_: int) -> int:
    return os.nice(0)
