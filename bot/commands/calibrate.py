"""Relevance calibration: cosine similarities made comparable across embedders by standardizing them per query.

Every embedder has its own scale: the bundled model puts unrelated code near 0.8 and relevant code near 0.9,
Titan or an OpenAI-compatible model near 0.05 and 0.3. Instead of a fixed cosine threshold, a query's
similarity to a candidate is measured in standard deviations above the query's similarities to two
backgrounds, and the two measures are averaged:

- the branch's own functions (a fixed sample of its vectors): does the candidate stand out in this repository?
- ``REFERENCE_TEXTS``, everyday functions of unrelated programs embedded by the same embedder: does it stand
  out from ordinary code?

A branch with fewer functions of its own than ``MIN_SAMPLE`` has its sample filled up with the reference
vectors. Samples are kept per store, repository branch and complete indexed commit (never shared across
repositories; an index still being completed is sampled again for each query), reference vectors per store and
embedder (and in the store's embedding cache, so they are embedded once).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from bot.commands.reference_texts import REFERENCE_TEXTS
from bot.runtime import Runtime

SAMPLE_SIZE = 256  # vectors of the branch the query is compared with
# The bundled reference texts are no tenant's: their vectors are cached under an id no repository has (GitHub
# ids start at 1, command-line repositories are negative), so forgetting a repository never touches them.
REFERENCE_REPO_ID = 0
MIN_SAMPLE = 64  # below this many, reference vectors fill the branch's sample up
_ENTRIES = 64  # samples kept in memory per store (least recently used dropped)
_TINY = 1e-6

_lock = threading.Lock()
_samples: weakref.WeakKeyDictionary[object, OrderedDict[Hashable, np.ndarray]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Calibration:
    """The two backgrounds a query's similarities are standardized against."""

    branch: np.ndarray  # (n, dimension): the branch's sample, filled up with reference vectors when small
    reference: np.ndarray  # (len(REFERENCE_TEXTS), dimension)

    def standardize(self, query_vector: np.ndarray, similarity: np.ndarray) -> np.ndarray:
        """``similarity`` (cosines of candidates to the query) in standard deviations above both backgrounds."""
        query = np.asarray(query_vector, dtype=np.float32).ravel()
        both: np.ndarray = (_z(similarity, self.branch @ query) + _z(similarity, self.reference @ query)) / 2
        return both


def _z(values: np.ndarray, background: np.ndarray) -> np.ndarray:
    if background.size == 0:
        return np.zeros_like(values)
    return (values - float(background.mean())) / max(float(background.std()), _TINY)


def _cached(store: object, key: Hashable) -> np.ndarray | None:
    with _lock:
        entries = _samples.get(store)
        if entries is None or key not in entries:
            return None
        entries.move_to_end(key)
        return entries[key]


def _remember(store: object, key: Hashable, value: np.ndarray) -> None:
    with _lock:
        entries = _samples.setdefault(store, OrderedDict())
        entries[key] = value
        while len(entries) > _ENTRIES:
            entries.popitem(last=False)


REFERENCE_KEYS = [hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] for text in REFERENCE_TEXTS]


def reference_vectors(runtime: Runtime) -> np.ndarray:
    """``REFERENCE_TEXTS`` embedded as documents by the runtime's embedder (through the store's cache)."""
    embedder, store = runtime.embedder, runtime.store
    key = ("reference", embedder.name)
    vectors = _cached(store, key)
    if vectors is None:
        keys = REFERENCE_KEYS
        found = store.cached_vectors(REFERENCE_REPO_ID, embedder.name, keys)
        missing = [i for i, text_key in enumerate(keys) if text_key not in found]
        if missing:
            fresh = embedder.embed_documents([REFERENCE_TEXTS[i] for i in missing])
            found.update({keys[i]: vector for i, vector in zip(missing, fresh, strict=True)})
            store.cache_vectors(REFERENCE_REPO_ID, embedder.name, {keys[i]: found[keys[i]] for i in missing})
        vectors = np.vstack([found[text_key] for text_key in keys]).astype(np.float32)
        _remember(store, key, vectors)
    return vectors


def calibration(runtime: Runtime, repo_id: int, branch: str, dimension: int) -> Calibration:
    """The backgrounds for queries of ``dimension`` on the repository's ``branch``."""
    store = runtime.store
    reference = reference_vectors(runtime)
    state = store.branch_state(repo_id, branch)
    key = ("branch", repo_id, branch, state.commit if state else None, dimension)
    # while an index is being completed its vectors are still coming in: its sample is read again for each query
    sample = _cached(store, key) if state and state.complete else None
    if sample is None:
        sample = np.asarray(store.sample_vectors(repo_id, branch, dimension, SAMPLE_SIZE), dtype=np.float32)
        if state and state.complete:
            _remember(store, key, sample)
    if len(sample) < MIN_SAMPLE:
        sample = np.vstack([sample.reshape(-1, dimension), reference[: MIN_SAMPLE - len(sample)]])
    return Calibration(branch=sample, reference=reference)
