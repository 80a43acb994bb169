"""The embedded store: SQLite (WAL, FTS5 over Korean morphemes and identifiers) plus one Faiss index per branch."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from bot.documents import BranchState, Document, DocumentRef
from bot.store.base import StoreError
from bot.text import analyze, identifier_terms

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    language TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    code TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    summary TEXT NOT NULL,
    summary_ok INTEGER NOT NULL,
    vector BLOB,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS documents_scope_path ON documents(scope, path);
CREATE INDEX IF NOT EXISTS documents_pending ON documents(scope) WHERE summary_ok = 0;
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
    scope UNINDEXED, summary, name, path, code, tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TABLE IF NOT EXISTS branches (
    scope TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    commit_sha TEXT,
    indexed_at REAL,
    embedder TEXT,
    dimension INTEGER,
    generation INTEGER NOT NULL DEFAULT 0
);
-- rows deleted per branch generation: with documents.generation, the change since a Faiss snapshot
CREATE TABLE IF NOT EXISTS tombstones (scope TEXT NOT NULL, generation INTEGER NOT NULL, row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_scope ON tombstones(scope, generation);
CREATE TABLE IF NOT EXISTS summary_cache (key TEXT PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vector_cache (
    embedder TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (embedder, key)
);
"""
# BM25 weights of the FTS columns: summary, name, path, code
_BM25 = "bm25(documents_fts, 0.0, 1.0, 2.5, 0.6, 0.8)"
_MAX_QUERY_TERMS = 48
# A new Faiss snapshot is written when the change since the last one exceeds this share of the index, so a
# push that touches a few functions costs the same on a large repository as on a small one.
_SNAPSHOT_SHARE = 0.1
_SNAPSHOT_MIN = 256
_BATCH = 500  # values per IN (...) list: SQLite caps the parameters of one statement


@dataclass
class _Vectors:
    """A branch's Faiss index in memory: the generation it reflects and how far it is from its snapshot."""

    generation: int
    index: faiss.Index | None
    snapshot: int  # generation of the newest snapshot on disk (0: none)
    changed: int  # rows added or deleted since that snapshot


def scope_of(repo: str, branch: str) -> str:
    """The key of one repository branch; every row and every query carries it."""
    return hashlib.sha1(f"{repo}\0{branch}".encode()).hexdigest()[:20]


def _terms(text: str) -> str:
    return " ".join(analyze(text))


def _fts_row(document: Document) -> tuple[str, str, str, str]:
    name_terms = " ".join(identifier_terms(document.name.replace(".", " ")))
    path_terms = " ".join(identifier_terms(document.path.replace("/", " ").replace(".", " ")))
    return _terms(document.summary), name_terms, path_terms, " ".join(identifier_terms(document.code))


def _batches(values: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """``values`` in lists small enough for one statement, each with its ``?,?,…`` placeholders."""
    for start in range(0, len(values), _BATCH):
        chunk = list(values[start : start + _BATCH])
        yield chunk, ",".join("?" * len(chunk))


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


class LocalStore:
    """SQLite + Faiss in one folder; safe for threads of one process and for several processes (WAL)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "faiss").mkdir(exist_ok=True)
            self._db = sqlite3.connect(
                self.directory / "ragcode.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"RAGCODE_HOME: cannot open the index in {self.directory}: {error}") from error
        self._lock = threading.RLock()
        self._indexes: dict[str, _Vectors] = {}

    def _migrate(self) -> None:
        """Bring an index made by an older version up to the current schema."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        if "generation" not in columns:
            self._db.execute("ALTER TABLE documents ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
        self._db.execute("CREATE INDEX IF NOT EXISTS documents_generation ON documents(scope, generation)")

    # -- state -------------------------------------------------------------------------------------------
    def branch_state(self, repo: str, branch: str) -> BranchState | None:
        """The indexed commit of ``repo``/``branch``."""
        states = self._states("WHERE b.scope = ?", (scope_of(repo, branch),))
        return states[0] if states else None

    def branch_states(self) -> list[BranchState]:
        """Every indexed repository branch."""
        return self._states("", ())

    def _states(self, where: str, args: tuple[str, ...]) -> list[BranchState]:
        sql = (
            "SELECT b.repo, b.branch, b.commit_sha, b.indexed_at, b.embedder, b.dimension, "
            "(SELECT COUNT(*) FROM documents d WHERE d.scope = b.scope) "
            f"FROM branches b {where} {'AND' if where else 'WHERE'} b.commit_sha IS NOT NULL ORDER BY b.repo, b.branch"
        )
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            BranchState(repo=r[0], branch=r[1], commit=r[2], indexed_at=r[3], embedder=r[4], dimension=r[5],
                        functions=r[6])
            for r in rows
        ]

    def set_state(self, repo: str, branch: str, commit: str, embedder: str, dimension: int) -> None:
        """Record ``commit`` as indexed (after all writes of the run)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO branches (scope, repo, branch, commit_sha, indexed_at, embedder, dimension) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET commit_sha = excluded.commit_sha, "
                "indexed_at = excluded.indexed_at, embedder = excluded.embedder, dimension = excluded.dimension",
                (scope_of(repo, branch), repo, branch, commit, time.time(), embedder, dimension),
            )

    def drop_branch(self, repo: str, branch: str) -> None:
        """Remove a branch's documents, state and vectors."""
        scope = scope_of(repo, branch)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM documents_fts WHERE scope = ?", (scope,))
                self._db.execute("DELETE FROM documents WHERE scope = ?", (scope,))
                self._db.execute("DELETE FROM branches WHERE scope = ?", (scope,))
                self._db.execute("DELETE FROM tombstones WHERE scope = ?", (scope,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._indexes.pop(scope, None)
            for file in (self.directory / "faiss").glob(f"{scope}.*"):
                file.unlink(missing_ok=True)

    # -- documents ---------------------------------------------------------------------------------------
    def refs(self, repo: str, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        scope = scope_of(repo, branch)
        sql = "SELECT id, path, name, content_hash, start_line, end_line, summary_ok FROM documents WHERE scope = ?"
        with self._lock:
            if paths is None:
                rows = self._db.execute(sql, (scope,)).fetchall()
            else:
                rows = []
                for chunk, marks in _batches(sorted(set(paths))):
                    rows += self._db.execute(f"{sql} AND path IN ({marks})", (scope, *chunk)).fetchall()
        return [DocumentRef(id=r[0], path=r[1], name=r[2], content_hash=r[3], start_line=r[4], end_line=r[5],
                            summary_ok=bool(r[6])) for r in rows]

    def pending(self, repo: str, branch: str) -> list[DocumentRef]:
        """Documents still waiting for a model summary."""
        scope = scope_of(repo, branch)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, name, content_hash, start_line, end_line FROM documents "
                "WHERE scope = ? AND summary_ok = 0", (scope,)).fetchall()
        return [DocumentRef(id=r[0], path=r[1], name=r[2], content_hash=r[3], start_line=r[4], end_line=r[5],
                            summary_ok=False) for r in rows]

    def documents(self, repo: str, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents of the branch with these ids, in that order."""
        scope = scope_of(repo, branch)
        found: dict[str, Document] = {}
        with self._lock:
            for chunk, marks in _batches(ids):
                for row in self._db.execute(
                    "SELECT id, path, name, kind, language, start_line, end_line, code, content_hash, summary, "
                    f"summary_ok, vector FROM documents WHERE id IN ({marks}) AND +scope = ?", (*chunk, scope)
                ):
                    found[row[0]] = Document(
                        id=row[0], repo=repo, branch=branch, path=row[1], name=row[2], kind=row[3],
                        language=row[4], start_line=row[5], end_line=row[6], code=row[7], content_hash=row[8],
                        summary=row[9], summary_ok=bool(row[10]), vector=_vector(row[11]),
                    )
        return [found[i] for i in ids if i in found]

    def write(self, repo: str, branch: str, upserts: Sequence[Document], deletes: Sequence[str]) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` in one transaction, then update the vectors."""
        if not upserts and not deletes:
            return
        scope = scope_of(repo, branch)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # a branch starts at a clock-based generation, so one dropped and indexed again never reuses
                # the numbers of its old snapshots
                self._db.execute(
                    "INSERT INTO branches (scope, repo, branch, generation) VALUES (?, ?, ?, ?) ON CONFLICT(scope) "
                    "DO UPDATE SET generation = generation + 1", (scope, repo, branch, time.time_ns() // 1000))
                generation = self._db.execute(
                    "SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()[0]
                gone = self._rowids(scope, [*deletes, *(d.id for d in upserts)])
                if gone:
                    marks = ",".join("?" * len(gone))
                    self._db.execute(f"DELETE FROM documents_fts WHERE rowid IN ({marks})", gone)
                    self._db.execute(f"DELETE FROM documents WHERE rowid IN ({marks})", gone)
                    self._db.executemany("INSERT INTO tombstones (scope, generation, row) VALUES (?, ?, ?)",
                                         [(scope, generation, row) for row in gone])
                for document in upserts:
                    cursor = self._db.execute(
                        "INSERT INTO documents (id, scope, path, name, kind, language, start_line, end_line, code, "
                        "content_hash, summary, summary_ok, vector, generation) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (document.id, scope, document.path, document.name, document.kind, document.language,
                         document.start_line, document.end_line, document.code, document.content_hash,
                         document.summary, int(document.summary_ok), _blob(document.vector), generation),
                    )
                    self._db.execute(
                        "INSERT INTO documents_fts (rowid, scope, summary, name, path, code) VALUES (?,?,?,?,?,?)",
                        (cursor.lastrowid, scope, *_fts_row(document)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._index(scope)

    def _rowids(self, scope: str, ids: Sequence[str]) -> list[int]:
        rowids: list[int] = []
        for chunk, marks in _batches(ids):
            rowids += [r[0] for r in self._db.execute(
                f"SELECT rowid FROM documents WHERE id IN ({marks}) AND +scope = ?", (*chunk, scope))]
        return rowids

    # -- vectors -----------------------------------------------------------------------------------------
    # SQLite holds every vector. Faiss keeps one index per branch in memory; on disk it keeps a snapshot named
    # after the branch generation it reflects. Opening replays the rows written and deleted since that
    # snapshot, so a crash between commit and snapshot loses nothing and a small change writes no snapshot.

    def _snapshot(self, scope: str) -> tuple[int, faiss.Index] | None:
        """The newest readable snapshot of the branch on disk, with its generation."""
        current = self._db.execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()
        snapshots = sorted(((int(path.name.split(".")[1]), path)
                            for path in (self.directory / "faiss").glob(f"{scope}.*.faiss")), reverse=True)
        for generation, path in snapshots:
            if current is None or generation > current[0]:
                continue  # left behind by a branch that was dropped since
            try:
                return generation, faiss.read_index(str(path))
            except RuntimeError as error:
                log.warning("faiss snapshot unreadable", extra={"path": str(path), "error": str(error)})
        return None

    def _index(self, scope: str) -> faiss.Index | None:
        """The branch's Faiss index at the current generation (replaying what changed since it was built)."""
        row = self._db.execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()
        generation = row[0] if row else 0
        vectors = self._indexes.get(scope)
        if vectors is None or vectors.generation > generation:
            snapshot = self._snapshot(scope)
            vectors = _Vectors(snapshot[0], snapshot[1], snapshot[0], 0) if snapshot else _Vectors(0, None, 0, 0)
        if vectors.generation < generation:
            vectors.index, changed = self._replay(scope, vectors.generation, vectors.index)
            vectors.generation, vectors.changed = generation, vectors.changed + changed
        self._indexes[scope] = vectors
        index = vectors.index
        if index is not None and (vectors.snapshot == 0 or vectors.changed > max(_SNAPSHOT_MIN,
                                                                                _SNAPSHOT_SHARE * index.ntotal)):
            self._save_snapshot(scope, generation, index)
            vectors.snapshot, vectors.changed = generation, 0
        return index

    def _replay(self, scope: str, since: int, index: faiss.Index | None) -> tuple[faiss.Index | None, int]:
        """``index`` brought forward from generation ``since``; also how many rows changed."""
        gone = [r[0] for r in self._db.execute(
            "SELECT row FROM tombstones WHERE scope = ? AND generation > ?", (scope, since))]
        rows = self._db.execute(
            "SELECT rowid, vector FROM documents WHERE scope = ? AND generation > ? AND vector IS NOT NULL",
            (scope, since)).fetchall()
        if index is not None and rows and index.d * 4 != len(rows[-1][1]):
            index = None  # the embedder's dimension changed: rebuild from every row of the new dimension
        if index is None:
            rebuilt = self._rebuild(scope)
            return rebuilt, (rebuilt.ntotal if rebuilt is not None else 0) + len(gone)
        if gone:
            index.remove_ids(faiss.IDSelectorArray(np.array(gone, dtype=np.int64)))
        if rows:
            index.add_with_ids(np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]),
                               np.array([r[0] for r in rows], dtype=np.int64))
        return index, len(gone) + len(rows)

    def _rebuild(self, scope: str) -> faiss.Index | None:
        """An index of every vector of the branch in SQLite.

        While a branch is being re-embedded for a new embedder, only vectors of the newest dimension count.
        """
        rows = self._db.execute(
            "SELECT rowid, vector FROM documents WHERE scope = ? AND vector IS NOT NULL ORDER BY rowid DESC",
            (scope,)).fetchall()
        if not rows:
            return None
        rows = [r for r in rows if len(r[1]) == len(rows[0][1])]
        vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
        index.add_with_ids(vectors, np.array([r[0] for r in rows], dtype=np.int64))
        return index

    def _save_snapshot(self, scope: str, generation: int, index: faiss.Index) -> None:
        """Write the index as the snapshot of ``generation`` and forget older snapshots and tombstones."""
        target = self.directory / "faiss" / f"{scope}.{generation}.faiss"
        temporary = target.with_suffix(".tmp")
        faiss.write_index(index, str(temporary))
        os.replace(temporary, target)
        for old in (self.directory / "faiss").glob(f"{scope}.*.faiss"):
            if old != target:
                old.unlink(missing_ok=True)
        self._db.execute("DELETE FROM tombstones WHERE scope = ? AND generation <= ?", (scope, generation))

    # -- caches ------------------------------------------------------------------------------------------
    def cached_summaries(self, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the cache by key."""
        found: dict[str, str] = {}
        with self._lock:
            for chunk, marks in _batches(keys):
                found.update(self._db.execute(
                    f"SELECT key, summary FROM summary_cache WHERE key IN ({marks})", chunk).fetchall())
        return found

    def cache_summaries(self, entries: dict[str, str]) -> None:
        """Add summaries to the cache."""
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO summary_cache (key, summary) VALUES (?, ?)",
                                 list(entries.items()))

    def cached_vectors(self, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the cache."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for chunk, marks in _batches(keys):
                for key, blob in self._db.execute(
                    f"SELECT key, vector FROM vector_cache WHERE embedder = ? AND key IN ({marks})",
                    (embedder, *chunk),
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def cache_vectors(self, embedder: str, entries: dict[str, np.ndarray]) -> None:
        """Add embeddings to the cache."""
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO vector_cache (embedder, key, vector) VALUES (?, ?, ?)",
                [(embedder, key, _blob(vector)) for key, vector in entries.items()],
            )

    # -- search ------------------------------------------------------------------------------------------
    def lexical_search(self, repo: str, branch: str, query: str, limit: int) -> list[tuple[str, float]]:
        """BM25 over summary morphemes, name and path identifiers and code identifiers, best first."""
        terms = list(dict.fromkeys(analyze(query)))[:_MAX_QUERY_TERMS]
        if not terms:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        with self._lock:
            rows = self._db.execute(
                f"SELECT d.id, -{_BM25} AS score FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid "
                f"WHERE documents_fts MATCH ? AND documents_fts.scope = ? ORDER BY {_BM25} LIMIT ?",
                (match, scope_of(repo, branch), limit),
            ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def vector_search(self, repo: str, branch: str, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Exact inner-product search in the branch's Faiss index, best first."""
        scope = scope_of(repo, branch)
        with self._lock:
            index = self._index(scope)
            if index is None or index.ntotal == 0:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            if query.shape[1] != index.d:
                raise StoreError(
                    f"RAGCODE_EMBEDDER: the index of {repo}@{branch} has {index.d}-dimensional vectors but the "
                    f"embedder gives {query.shape[1]}; run `ragcode index --full` to re-embed"
                )
            scores, rowids = index.search(query, min(limit, index.ntotal))
            pairs = [(int(r), float(s)) for r, s in zip(rowids[0], scores[0], strict=True) if r >= 0]
            if not pairs:
                return []
            marks = ",".join("?" * len(pairs))
            ids = dict(self._db.execute(
                f"SELECT rowid, id FROM documents WHERE scope = ? AND rowid IN ({marks})",
                (scope, *(r for r, _ in pairs)),
            ).fetchall())
        return [(ids[r], s) for r, s in pairs if r in ids]

    def sample_vectors(self, repo: str, branch: str, dimension: int, limit: int) -> np.ndarray:
        """The vectors of the ``limit`` lowest document ids (hashes, so an even sample) of ``dimension``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT vector FROM documents WHERE scope = ? AND length(vector) = ? ORDER BY id LIMIT ?",
                (scope_of(repo, branch), 4 * dimension, max(limit, 0))).fetchall()
        if not rows:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.vstack([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def ping(self) -> bool:
        """True when SQLite answers."""
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
