"""The embedded store: SQLite (WAL, FTS5 over Korean morphemes and identifiers) plus one Faiss index per branch."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
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
    vector BLOB
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
CREATE TABLE IF NOT EXISTS summary_cache (key TEXT PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vector_cache (
    embedder TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (embedder, key)
);
"""
# BM25 weights of the FTS columns: summary, name, path, code
_BM25 = "bm25(documents_fts, 0.0, 1.0, 2.5, 0.6, 0.8)"
_MAX_QUERY_TERMS = 48


def scope_of(repo: str, branch: str) -> str:
    """The key of one repository branch; every row and every query carries it."""
    return hashlib.sha1(f"{repo}\0{branch}".encode()).hexdigest()[:20]


def _terms(text: str) -> str:
    return " ".join(analyze(text))


def _fts_row(document: Document) -> tuple[str, str, str, str]:
    name_terms = " ".join(identifier_terms(document.name.replace(".", " ")))
    path_terms = " ".join(identifier_terms(document.path.replace("/", " ").replace(".", " ")))
    return _terms(document.summary), name_terms, path_terms, " ".join(identifier_terms(document.code))


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
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"RAGCODE_HOME: cannot open the index in {self.directory}: {error}") from error
        self._lock = threading.RLock()
        self._indexes: dict[str, tuple[int, faiss.Index]] = {}

    # -- state -------------------------------------------------------------------------------------------
    def branch_state(self, repo: str, branch: str) -> BranchState | None:
        """The indexed commit of ``repo``/``branch``."""
        states = self._states("WHERE b.scope = ?", (scope_of(repo, branch),))
        return states[0] if states else None

    def branch_states(self) -> list[BranchState]:
        """Every indexed repository branch."""
        return self._states("", ())

    def _states(self, where: str, args: tuple) -> list[BranchState]:
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
                wanted = sorted(set(paths))
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
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
        return [DocumentRef(*r, summary_ok=False) for r in rows]

    def documents(self, repo: str, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents of the branch with these ids, in that order."""
        scope = scope_of(repo, branch)
        found: dict[str, Document] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    "SELECT id, path, name, kind, language, start_line, end_line, code, content_hash, summary, "
                    f"summary_ok, vector FROM documents WHERE scope = ? AND id IN ({marks})", (scope, *chunk)
                ):
                    found[row[0]] = Document(
                        id=row[0], repo=repo, branch=branch, path=row[1], name=row[2], kind=row[3],
                        language=row[4], start_line=row[5], end_line=row[6], code=row[7], content_hash=row[8],
                        summary=row[9], summary_ok=bool(row[10]), vector=_vector(row[11]),
                    )
        return [found[i] for i in ids if i in found]

    def write(self, repo: str, branch: str, upserts: Sequence[Document], deletes: Sequence[str]) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` in one transaction, then persist the vectors."""
        if not upserts and not deletes:
            return
        scope = scope_of(repo, branch)
        with self._lock:
            _, index = self._index(scope)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._rowids(scope, [*deletes, *(d.id for d in upserts)])
                if gone:
                    marks = ",".join("?" * len(gone))
                    self._db.execute(f"DELETE FROM documents_fts WHERE rowid IN ({marks})", gone)
                    self._db.execute(f"DELETE FROM documents WHERE rowid IN ({marks})", gone)
                added_ids: list[int] = []
                added_vectors: list[np.ndarray] = []
                for document in upserts:
                    cursor = self._db.execute(
                        "INSERT INTO documents (id, scope, path, name, kind, language, start_line, end_line, code, "
                        "content_hash, summary, summary_ok, vector) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (document.id, scope, document.path, document.name, document.kind, document.language,
                         document.start_line, document.end_line, document.code, document.content_hash,
                         document.summary, int(document.summary_ok), _blob(document.vector)),
                    )
                    rowid = cursor.lastrowid
                    self._db.execute(
                        "INSERT INTO documents_fts (rowid, scope, summary, name, path, code) VALUES (?,?,?,?,?,?)",
                        (rowid, scope, *_fts_row(document)),
                    )
                    if document.vector is not None:
                        added_ids.append(rowid)
                        added_vectors.append(document.vector)
                self._db.execute(
                    "INSERT INTO branches (scope, repo, branch) VALUES (?, ?, ?) ON CONFLICT(scope) "
                    "DO UPDATE SET generation = generation + 1", (scope, repo, branch))
                generation = self._db.execute(
                    "SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            index = self._update_index(scope, index, gone, added_ids, added_vectors)
            self._save_index(scope, generation, index)

    def _rowids(self, scope: str, ids: Sequence[str]) -> list[int]:
        rowids: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rowids += [r[0] for r in self._db.execute(
                f"SELECT rowid FROM documents WHERE scope = ? AND id IN ({marks})", (scope, *chunk))]
        return rowids

    # -- vectors -----------------------------------------------------------------------------------------
    def _index_path(self, scope: str, generation: int) -> Path:
        return self.directory / "faiss" / f"{scope}.{generation}.faiss"

    def _index(self, scope: str) -> tuple[int, faiss.Index | None]:
        """The branch's Faiss index, reloaded when another process wrote a newer generation."""
        row = self._db.execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()
        generation = row[0] if row else 0
        cached = self._indexes.get(scope)
        if cached and cached[0] == generation:
            return cached
        path = self._index_path(scope, generation)
        index = None
        if path.exists():
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as error:
                log.warning("faiss index unreadable, rebuilding", extra={"path": str(path), "error": str(error)})
        if index is None:
            index = self._rebuild(scope)
            if index is not None:
                self._save_index(scope, generation, index)
        self._indexes[scope] = (generation, index)
        return generation, index

    def _rebuild(self, scope: str) -> faiss.Index | None:
        """A Faiss index built from the vectors in SQLite (after a crash between commit and save).

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

    def _update_index(self, scope: str, index: faiss.Index | None, gone: list[int], ids: list[int],
                      vectors: list[np.ndarray]) -> faiss.Index | None:
        if index is not None and vectors and index.d != len(vectors[0]):
            return self._rebuild(scope)  # the embedder's dimension changed: start over from SQLite
        if index is not None and gone:
            index.remove_ids(np.array(gone, dtype=np.int64))
        if vectors:
            if index is None:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(len(vectors[0])))
            index.add_with_ids(np.vstack(vectors).astype(np.float32), np.array(ids, dtype=np.int64))
        return index

    def _save_index(self, scope: str, generation: int, index: faiss.Index | None) -> None:
        folder = self.directory / "faiss"
        if index is not None:
            target = self._index_path(scope, generation)
            temporary = target.with_suffix(".tmp")
            faiss.write_index(index, str(temporary))
            os.replace(temporary, target)
        for old in folder.glob(f"{scope}.*.faiss"):
            if old.name != f"{scope}.{generation}.faiss":
                old.unlink(missing_ok=True)
        self._indexes[scope] = (generation, index)

    # -- caches ------------------------------------------------------------------------------------------
    def cached_summaries(self, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the cache by key."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
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
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
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
            _, index = self._index(scope)
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
