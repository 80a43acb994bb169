"""The embedded store: SQLite (WAL, FTS5 over Korean morphemes and identifiers) plus one Faiss index per branch."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from bot.documents import BranchState, Document, DocumentRef, Overlay, Repository, short_name
from bot.store.base import MAX_LOOKUP, StoreError, name_matches
from bot.text import analyze, analyze_many, identifier_terms

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2: rows keyed by the repository's numeric id, caches per repository; 3: complete flag;
# 4: calls, overlays
_OVERLAYS = """
CREATE INDEX IF NOT EXISTS documents_short_name ON documents(scope, short_name);
-- pull request overlays: the base branch they overlay and the base paths they shadow (a JSON list)
CREATE TABLE IF NOT EXISTS overlays (
    scope TEXT PRIMARY KEY, repo_id INTEGER NOT NULL, number INTEGER NOT NULL, base TEXT NOT NULL,
    head TEXT NOT NULL, merge_base TEXT NOT NULL, shadowed TEXT NOT NULL, fork INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS overlays_repo ON overlays(repo_id);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    repo_id INTEGER NOT NULL,
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
    generation INTEGER NOT NULL DEFAULT 0,
    calls TEXT NOT NULL DEFAULT '',
    short_name TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS documents_scope_path ON documents(scope, path);
CREATE INDEX IF NOT EXISTS documents_repo ON documents(repo_id);
CREATE INDEX IF NOT EXISTS documents_generation ON documents(scope, generation);
CREATE INDEX IF NOT EXISTS documents_pending ON documents(scope) WHERE summary_ok = 0;
CREATE INDEX IF NOT EXISTS documents_unembedded ON documents(scope) WHERE vector IS NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
    scope UNINDEXED, summary, name, path, code, tokenize = 'unicode61 remove_diacritics 0'
);
-- one row per branch that was ever written to; commit_sha is set once a run has recorded its commit
CREATE TABLE IF NOT EXISTS branches (
    scope TEXT PRIMARY KEY,
    repo_id INTEGER NOT NULL,
    branch TEXT NOT NULL,
    name TEXT,
    installation INTEGER,
    commit_sha TEXT,
    indexed_at REAL,
    embedder TEXT,
    dimension INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS branches_repo ON branches(repo_id);
CREATE INDEX IF NOT EXISTS branches_name ON branches(name);
-- rows deleted per branch generation: with documents.generation, the change since a Faiss snapshot
CREATE TABLE IF NOT EXISTS tombstones (scope TEXT NOT NULL, generation INTEGER NOT NULL, row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_scope ON tombstones(scope, generation);
CREATE TABLE IF NOT EXISTS summary_cache (
    repo_id INTEGER NOT NULL, key TEXT NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (repo_id, key)
);
CREATE TABLE IF NOT EXISTS vector_cache (
    repo_id INTEGER NOT NULL, embedder TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (repo_id, embedder, key)
);
""" + _OVERLAYS
# Indexes of these formats are upgraded in place (nothing is dropped) by these statements; read-only stores read
# them as they are
_UPGRADES = {
    2: "ALTER TABLE branches ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;",
    3: "",
}
_TO_4 = ("ALTER TABLE documents ADD COLUMN calls TEXT NOT NULL DEFAULT '';"
         "ALTER TABLE documents ADD COLUMN short_name TEXT NOT NULL DEFAULT '';")
_OLD_TABLES = ("documents_fts", "documents", "branches", "tombstones", "summary_cache", "vector_cache", "overlays")
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

    @property
    def nbytes(self) -> int:
        """Memory the vectors take."""
        return 0 if self.index is None else int(self.index.ntotal) * int(self.index.d) * 4


def scope_of(repo_id: int, branch: str) -> str:
    """The key of one repository branch; every document row and every query carries it."""
    return hashlib.sha1(f"{repo_id}\0{branch}".encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _fts_rows(documents: Sequence[Document]) -> list[tuple[str, str, str, str]]:
    """The full-text columns of each document: summary, name, path and code terms."""
    summaries = analyze_many([document.summary for document in documents])
    return [(" ".join(summary),
             " ".join(identifier_terms(document.name.replace(".", " "))),
             " ".join(identifier_terms(document.path.replace("/", " ").replace(".", " "))),
             " ".join(identifier_terms(document.code)))
            for document, summary in zip(documents, summaries, strict=True)]


def _batches(values: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """``values`` in lists small enough for one statement, each with its ``?,?,…`` placeholders."""
    for start in range(0, len(values), _BATCH):
        chunk = list(values[start : start + _BATCH])
        yield chunk, ",".join("?" * len(chunk))


def _calls_text(calls: Sequence[str]) -> str:
    """Calls as stored: one a line, with a newline before the first and after the last (for ``instr`` lookups)."""
    return "\n" + "\n".join(calls) + "\n" if calls else ""


def _calls(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.split("\n") if line)


def _glob(text: str) -> str:
    """``text`` matched literally in a GLOB pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


class LocalStore:
    """SQLite + Faiss in one folder; safe for threads of one process and for several processes (WAL).

    Each thread has its own SQLite connection, so a search never waits for another branch's write; the Faiss
    index of a branch is guarded by that branch's lock, and at most ``cache_bytes`` of vectors stay loaded
    (least recently used branches are unloaded and reload from their snapshot when searched again).
    """

    def __init__(self, directory: Path, *, cache_bytes: int = 1 << 30, read_only: bool = False) -> None:
        """Open the index in ``directory``. ``read_only`` (read-only commands, dry runs) writes nothing to disk: a
        missing index reads as an empty one, an existing one is opened for reading and never migrated."""
        self.directory = Path(directory)
        self.cache_bytes = cache_bytes
        self.read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()  # the maps below
        self._indexes: OrderedDict[str, _Vectors] = OrderedDict()
        self._scope_locks: dict[str, threading.Lock] = {}
        self._path = self.directory / "ragcode.sqlite3"
        self._empty = read_only and not self._path.is_file()  # each thread's connection gets its own empty schema
        self._legacy = 0  # the format of an older index read as it is
        try:
            if read_only:
                version = self._db().execute("PRAGMA user_version").fetchone()[0]
                if version != SCHEMA_VERSION and version not in _UPGRADES:
                    raise StoreError(f"the index in {self.directory} has another format ({version}); the next "
                                     "index run rebuilds it")
                # an index the next run upgrades is read as it is: no calls, no overlays yet
                self._legacy = version if version != SCHEMA_VERSION else 0
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "faiss").mkdir(exist_ok=True)
            self._migrate(self._db())
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"RAGCODE_HOME: cannot open the index in {self.directory}: {error}") from error

    def _db(self) -> sqlite3.Connection:
        """This thread's connection."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._empty:
                db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                self._migrate(db)
            elif self.read_only:
                # Without a -wal file no connection is open and the file is complete: read it as immutable, so
                # SQLite creates no -wal/-shm files either. With one, share the open connections' WAL.
                wal = self._path.with_name(self._path.name + "-wal").exists()
                options = "mode=ro" if wal else "mode=ro&immutable=1"
                db = sqlite3.connect(f"{self._path.resolve().as_uri()}?{options}", uri=True, check_same_thread=False,
                                     isolation_level=None, timeout=30)
            else:
                db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create the schema; an index of an older format is dropped (it is rebuilt by the next run)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version in _UPGRADES:
            log.info("upgrading the index in %s from format %d to %d", self.directory, version, SCHEMA_VERSION)
            with self._transaction() as tx:
                for statement in (_UPGRADES[version] + _TO_4 + _OVERLAYS).split(";"):
                    if statement.strip():
                        tx.execute(statement)
                names = tx.execute("SELECT rowid, name FROM documents").fetchall()
                tx.executemany("UPDATE documents SET short_name = ? WHERE rowid = ?",
                               [(short_name(name), rowid) for rowid, name in names])
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables & set(_OLD_TABLES):
            log.warning("the index in %s has an older format (%d); it is dropped and rebuilt by the next run",
                        self.directory, version)
            for table in _OLD_TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for file in (self.directory / "faiss").glob("*"):
                file.unlink(missing_ok=True)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _scope_lock(self, scope: str) -> threading.Lock:
        with self._guard:
            return self._scope_locks.setdefault(scope, threading.Lock())

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db())

    # -- state -------------------------------------------------------------------------------------------
    def branch_state(self, repo_id: int, branch: str) -> BranchState | None:
        """The indexed commit of the repository's branch."""
        states = self._states("b.scope = ?", (scope_of(repo_id, branch),))
        return states[0] if states else None

    def branch_states(self, repo_id: int) -> list[BranchState]:
        """Every indexed branch of one repository."""
        return self._states("b.repo_id = ?", (repo_id,))

    def repository_ids(self, name: str) -> list[int]:
        """Ids of the indexed repositories last known as ``name``, most recently indexed first."""
        rows = self._db().execute(
            "SELECT repo_id, MAX(indexed_at) AS latest FROM branches WHERE name = ? AND commit_sha IS NOT NULL "
            "GROUP BY repo_id ORDER BY latest DESC", (name,)).fetchall()
        return [int(row[0]) for row in rows]

    def all_branch_states(self) -> Iterator[BranchState]:
        """Every indexed branch of every repository."""
        yield from self._states("1 = 1", ())

    def _states(self, where: str, args: tuple[object, ...]) -> list[BranchState]:
        rows = self._db().execute(
            "SELECT b.repo_id, b.name, b.installation, b.branch, b.commit_sha, b.indexed_at, b.embedder, "
            f"b.dimension, (SELECT COUNT(*) FROM documents d WHERE d.scope = b.scope), {self._complete_column} "
            f"FROM branches b WHERE {where} AND b.commit_sha IS NOT NULL ORDER BY b.name, b.repo_id, b.branch",
            args).fetchall()
        return [BranchState(repo_id=r[0], repo=r[1], installation=r[2] or 0, branch=r[3], commit=r[4],
                            indexed_at=r[5], embedder=r[6], dimension=r[7], functions=r[8], complete=bool(r[9]))
                for r in rows]

    def set_state(self, repo: Repository, branch: str, commit: str, embedder: str, dimension: int, *,
                  complete: bool = True) -> None:
        """Record ``commit`` as indexed (keyword-searchable; ``complete`` once vectors and summaries are in)."""
        self._db().execute(
            "INSERT INTO branches (scope, repo_id, branch, name, installation, commit_sha, indexed_at, embedder, "
            "dimension, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET "
            "name = excluded.name, installation = excluded.installation, commit_sha = excluded.commit_sha, "
            "indexed_at = excluded.indexed_at, embedder = excluded.embedder, dimension = excluded.dimension, "
            "complete = excluded.complete",
            (scope_of(repo.id, branch), repo.id, branch, repo.name, repo.installation, commit, time.time(), embedder,
             dimension, int(complete)),
        )

    def rename_repository(self, repo_id: int, name: str) -> None:
        """Record the repository's new name."""
        self._db().execute("UPDATE branches SET name = ? WHERE repo_id = ?", (name, repo_id))

    def drop_branch(self, repo_id: int, branch: str) -> None:
        """Remove a branch's documents, state and vectors."""
        self._drop_scopes([scope_of(repo_id, branch)])

    def forget_repository(self, repo_id: int) -> None:
        """Remove every branch (recorded or not), the state and the caches of a repository."""
        db = self._db()
        scopes = {row[0] for row in db.execute("SELECT scope FROM branches WHERE repo_id = ?", (repo_id,))}
        scopes |= {row[0] for row in db.execute("SELECT DISTINCT scope FROM documents WHERE repo_id = ?", (repo_id,))}
        scopes |= {row[0] for row in db.execute("SELECT scope FROM overlays WHERE repo_id = ?", (repo_id,))}
        self._drop_scopes(sorted(scopes))
        with self._transaction() as tx:
            tx.execute("DELETE FROM summary_cache WHERE repo_id = ?", (repo_id,))
            tx.execute("DELETE FROM vector_cache WHERE repo_id = ?", (repo_id,))

    def _drop_scopes(self, scopes: Sequence[str]) -> None:
        for scope in scopes:
            with self._scope_lock(scope):
                with self._transaction() as tx:
                    tx.execute("DELETE FROM documents_fts WHERE scope = ?", (scope,))
                    tx.execute("DELETE FROM documents WHERE scope = ?", (scope,))
                    tx.execute("DELETE FROM branches WHERE scope = ?", (scope,))
                    tx.execute("DELETE FROM tombstones WHERE scope = ?", (scope,))
                    if not self._legacy:
                        tx.execute("DELETE FROM overlays WHERE scope = ?", (scope,))
                with self._guard:
                    self._indexes.pop(scope, None)
                for file in (self.directory / "faiss").glob(f"{scope}.*"):
                    file.unlink(missing_ok=True)

    # -- documents ---------------------------------------------------------------------------------------
    @property
    def _calls_column(self) -> str:
        """The calls column in a SELECT (an index of an upgradable format, read as is, has none)."""
        return "''" if self._legacy else "calls"

    @property
    def _complete_column(self) -> str:
        """The branches' complete flag in a SELECT (format 2, read as is, has none: its runs all completed)."""
        return "1" if self._legacy == 2 else "b.complete"

    def _ref_rows(self, where: str, args: Sequence[object]) -> list[DocumentRef]:
        rows = self._db().execute(
            f"SELECT id, path, name, content_hash, start_line, end_line, summary_ok, {self._calls_column} "
            f"FROM documents WHERE {where}", tuple(args)).fetchall()
        return [DocumentRef(id=r[0], path=r[1], name=r[2], content_hash=r[3], start_line=r[4], end_line=r[5],
                            summary_ok=bool(r[6]), calls=_calls(r[7])) for r in rows]

    def refs(self, repo_id: int, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        scope = scope_of(repo_id, branch)
        if paths is None:
            return self._ref_rows("scope = ?", (scope,))
        refs: list[DocumentRef] = []
        for chunk, marks in _batches(sorted(set(paths))):
            refs += self._ref_rows(f"scope = ? AND path IN ({marks})", (scope, *chunk))
        return refs

    def pending(self, repo_id: int, branch: str) -> list[DocumentRef]:
        """Documents still waiting for a model summary."""
        return self._ref_rows("scope = ? AND summary_ok = 0", (scope_of(repo_id, branch),))

    def documents(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents of the branch with these ids, in that order."""
        scope = scope_of(repo_id, branch)
        found: dict[str, Document] = {}
        db = self._db()
        for chunk, marks in _batches(ids):
            for row in db.execute(
                "SELECT id, path, name, kind, language, start_line, end_line, code, content_hash, summary, "
                f"summary_ok, vector, {self._calls_column} FROM documents WHERE id IN ({marks}) AND +scope = ?",
                (*chunk, scope),
            ):
                found[row[0]] = Document(
                    id=row[0], repo_id=repo_id, branch=branch, path=row[1], name=row[2], kind=row[3],
                    language=row[4], start_line=row[5], end_line=row[6], code=row[7], content_hash=row[8],
                    summary=row[9], summary_ok=bool(row[10]), vector=_vector(row[11]), calls=_calls(row[12]),
                )
        return [found[i] for i in ids if i in found]

    def write(self, repo_id: int, branch: str, upserts: Sequence[Document], deletes: Sequence[str], *,
              dimension: int | None = None) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` in one transaction, then update the vectors."""
        if not upserts and not deletes:
            return
        for document in upserts:
            if (document.repo_id, document.branch) != (repo_id, branch):
                raise StoreError(f"document {document.id} belongs to repository {document.repo_id}@"
                                 f"{document.branch}, not {repo_id}@{branch}")
        scope = scope_of(repo_id, branch)
        fts_rows = _fts_rows(upserts)  # before the lock: Korean analysis is the slow part of a write
        with self._scope_lock(scope):
            with self._transaction() as tx:
                # a branch starts at a clock-based generation, so one dropped and indexed again never reuses
                # the numbers of its old snapshots
                tx.execute(
                    "INSERT INTO branches (scope, repo_id, branch, generation) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(scope) DO UPDATE SET generation = generation + 1",
                    (scope, repo_id, branch, time.time_ns() // 1000))
                generation = tx.execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()[0]
                gone = self._rowids(tx, scope, [*deletes, *(d.id for d in upserts)])
                if gone:
                    marks = ",".join("?" * len(gone))
                    tx.execute(f"DELETE FROM documents_fts WHERE rowid IN ({marks})", gone)
                    tx.execute(f"DELETE FROM documents WHERE rowid IN ({marks})", gone)
                    tx.executemany("INSERT INTO tombstones (scope, generation, row) VALUES (?, ?, ?)",
                                   [(scope, generation, row) for row in gone])
                for document, fts_row in zip(upserts, fts_rows, strict=True):
                    cursor = tx.execute(
                        "INSERT INTO documents (id, repo_id, scope, path, name, kind, language, start_line, end_line,"
                        " code, content_hash, summary, summary_ok, vector, generation, calls, short_name) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (document.id, repo_id, scope, document.path, document.name, document.kind,
                         document.language, document.start_line, document.end_line, document.code,
                         document.content_hash, document.summary, int(document.summary_ok), _blob(document.vector),
                         generation, _calls_text(document.calls), short_name(document.name)),
                    )
                    tx.execute(
                        "INSERT INTO documents_fts (rowid, scope, summary, name, path, code) VALUES (?,?,?,?,?,?)",
                        (cursor.lastrowid, scope, *fts_row),
                    )
            self._index(scope)

    def without_vectors(self, repo_id: int, branch: str, limit: int) -> list[tuple[str, str, str]]:
        """(id, name, summary) of documents of the branch still without a vector."""
        rows = self._db().execute(
            "SELECT id, name, summary FROM documents WHERE scope = ? AND vector IS NULL ORDER BY rowid LIMIT ?",
            (scope_of(repo_id, branch), limit)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def set_vectors(self, repo_id: int, branch: str, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors of existing documents (no other column changes, so the keyword index is untouched)."""
        if not vectors:
            return
        scope = scope_of(repo_id, branch)
        with self._scope_lock(scope):
            with self._transaction() as tx:
                tx.execute("UPDATE branches SET generation = generation + 1 WHERE scope = ?", (scope,))
                generation = tx.execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()[0]
                rowids = self._rowid_map(tx, scope, list(vectors))
                # a row that had a vector leaves the Faiss index first, then comes back with its new one
                tx.executemany("INSERT INTO tombstones (scope, generation, row) VALUES (?, ?, ?)",
                               [(scope, generation, row) for row in rowids.values()])
                tx.executemany("UPDATE documents SET vector = ?, generation = ? WHERE rowid = ?",
                               [(_blob(vectors[doc_id]), generation, row) for doc_id, row in rowids.items()])
            self._index(scope)

    @staticmethod
    def _rowids(db: sqlite3.Connection, scope: str, ids: Sequence[str]) -> list[int]:
        return list(LocalStore._rowid_map(db, scope, ids).values())

    @staticmethod
    def _rowid_map(db: sqlite3.Connection, scope: str, ids: Sequence[str]) -> dict[str, int]:
        """Row ids of the branch's documents among ``ids``, by document id."""
        found: dict[str, int] = {}
        for chunk, marks in _batches(ids):
            found.update((r[1], r[0]) for r in db.execute(
                f"SELECT rowid, id FROM documents WHERE id IN ({marks}) AND +scope = ?", (*chunk, scope)))
        return found

    # -- names, paths, calls ------------------------------------------------------------------------------
    # Scans of the branch's rows (the scope index narrows them): a handful of names per answer.

    def find_names(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents named one of ``names``: the qualified name, or its last components (``*.name``, ``name#2``),
        found by their last name's index and then matched whole."""
        wanted = sorted({name for name in names if name})
        found: list[DocumentRef] = []
        for chunk, marks in _batches(sorted({short_name(name) for name in wanted})):
            if self._legacy:  # an index of the upgradable format, read as is: no last names yet, so a scan
                patterns = [pattern for name in chunk
                            for pattern in (f"*.{_glob(name)}", f"{_glob(name)}#*", f"*.{_glob(name)}#*")]
                where = f"(name IN ({marks}) OR " + " OR ".join(["name GLOB ?"] * len(patterns)) + ")"
                refs = self._ref_rows(f"scope = ? AND {where}", (scope_of(repo_id, branch), *chunk, *patterns))
            else:
                refs = self._ref_rows(f"scope = ? AND short_name IN ({marks}) LIMIT {10 * limit}",
                                      (scope_of(repo_id, branch), *chunk))
            found += [ref for ref in refs if any(name_matches(ref.name, name) for name in wanted)]
        return found[:limit]

    def find_paths(self, repo_id: int, branch: str, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that name a file of the branch, exactly or by its last components."""
        scope, db, found = scope_of(repo_id, branch), self._db(), set()
        for path in dict.fromkeys(paths):
            clean = path.strip().lstrip("/")
            if not clean:
                continue
            if clean.endswith("/"):  # a folder: some file lies in it
                args: tuple[str, ...] = (f"{_glob(clean)}*", f"*/{_glob(clean)}*")
                where = "path GLOB ? OR path GLOB ?"
            else:
                args, where = (clean, f"*/{_glob(clean)}"), "path = ? OR path GLOB ?"
            if db.execute(f"SELECT 1 FROM documents WHERE scope = ? AND ({where}) LIMIT 1", (scope, *args)).fetchone():
                found.add(path)
        return found

    def callers(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents whose recorded calls include one of ``names``."""
        wanted = sorted({name for name in names if name})[:100]
        if not wanted or self._legacy:
            return []
        where = " OR ".join(["instr(calls, ?) > 0"] * len(wanted))
        return self._ref_rows(f"scope = ? AND ({where}) LIMIT {int(limit)}",
                              (scope_of(repo_id, branch), *(f"\n{name}\n" for name in wanted)))

    # -- overlays ----------------------------------------------------------------------------------------
    def set_overlay(self, overlay: Overlay) -> None:
        """Record a pull request overlay."""
        self._db().execute(
            "INSERT OR REPLACE INTO overlays (scope, repo_id, number, base, head, merge_base, shadowed, fork) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (scope_of(overlay.repo_id, overlay.branch), overlay.repo_id, overlay.number, overlay.base, overlay.head,
             overlay.merge_base, json.dumps(list(overlay.shadowed)), int(overlay.fork)))

    def overlay(self, repo_id: int, branch: str) -> Overlay | None:
        """The overlay recorded for the scope ``branch``."""
        if self._legacy:
            return None
        row = self._db().execute(
            "SELECT number, base, head, merge_base, shadowed, fork FROM overlays WHERE scope = ? AND repo_id = ?",
            (scope_of(repo_id, branch), repo_id)).fetchone()
        if row is None:
            return None
        return Overlay(repo_id=repo_id, number=row[0], base=row[1], head=row[2], merge_base=row[3],
                       shadowed=tuple(json.loads(row[4])), fork=bool(row[5]))

    # -- vectors -----------------------------------------------------------------------------------------
    # SQLite holds every vector. Faiss keeps one index per branch in memory; on disk it keeps a snapshot named
    # after the branch generation it reflects. Opening replays the rows written and deleted since that
    # snapshot, so a crash between commit and snapshot loses nothing and a small change writes no snapshot.
    # Callers hold the branch's lock.

    def _snapshot(self, scope: str) -> tuple[int, faiss.Index] | None:
        """The newest readable snapshot of the branch on disk, with its generation."""
        current = self._db().execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()
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
        row = self._db().execute("SELECT generation FROM branches WHERE scope = ?", (scope,)).fetchone()
        generation = row[0] if row else 0
        with self._guard:
            vectors = self._indexes.get(scope)
        if vectors is None or vectors.generation > generation:
            snapshot = self._snapshot(scope)
            vectors = _Vectors(snapshot[0], snapshot[1], snapshot[0], 0) if snapshot else _Vectors(0, None, 0, 0)
        if vectors.generation < generation:
            vectors.index, changed = self._replay(scope, vectors.generation, vectors.index)
            vectors.generation, vectors.changed = generation, vectors.changed + changed
        index = vectors.index
        if index is not None and not self.read_only and (vectors.snapshot == 0 or vectors.changed > max(_SNAPSHOT_MIN,
                                                                                _SNAPSHOT_SHARE * index.ntotal)):
            self._save_snapshot(scope, generation, index)
            vectors.snapshot, vectors.changed = generation, 0
        self._keep(scope, vectors)
        return index

    def _keep(self, scope: str, vectors: _Vectors) -> None:
        """Remember the branch's index as the most recently used; unload the least recently used beyond the cap."""
        with self._guard:
            self._indexes[scope] = vectors
            self._indexes.move_to_end(scope)
            total = sum(v.nbytes for v in self._indexes.values())
            while total > self.cache_bytes and len(self._indexes) > 1:
                _, evicted = self._indexes.popitem(last=False)
                total -= evicted.nbytes

    def _replay(self, scope: str, since: int, index: faiss.Index | None) -> tuple[faiss.Index | None, int]:
        """``index`` brought forward from generation ``since``; also how many rows changed."""
        db = self._db()
        gone = [r[0] for r in db.execute(
            "SELECT row FROM tombstones WHERE scope = ? AND generation > ?", (scope, since))]
        rows = db.execute(
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
        rows = self._db().execute(
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
        self._db().execute("DELETE FROM tombstones WHERE scope = ? AND generation <= ?", (scope, generation))

    # -- caches ------------------------------------------------------------------------------------------
    def cached_summaries(self, repo_id: int, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the repository's cache by key."""
        found: dict[str, str] = {}
        db = self._db()
        for chunk, marks in _batches(keys):
            found.update(db.execute(
                f"SELECT key, summary FROM summary_cache WHERE repo_id = ? AND key IN ({marks})",
                (repo_id, *chunk)).fetchall())
        return found

    def cache_summaries(self, repo_id: int, entries: dict[str, str]) -> None:
        """Add summaries to the repository's cache (a read-only store keeps nothing)."""
        if self.read_only:
            return
        self._db().executemany("INSERT OR REPLACE INTO summary_cache (repo_id, key, summary) VALUES (?, ?, ?)",
                               [(repo_id, key, summary) for key, summary in entries.items()])

    def cached_vectors(self, repo_id: int, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the repository's cache."""
        found: dict[str, np.ndarray] = {}
        db = self._db()
        for chunk, marks in _batches(keys):
            for key, blob in db.execute(
                f"SELECT key, vector FROM vector_cache WHERE repo_id = ? AND embedder = ? AND key IN ({marks})",
                (repo_id, embedder, *chunk),
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def cache_vectors(self, repo_id: int, embedder: str, entries: dict[str, np.ndarray]) -> None:
        """Add embeddings to the repository's cache (a read-only store keeps nothing)."""
        if self.read_only:
            return
        self._db().executemany(
            "INSERT OR REPLACE INTO vector_cache (repo_id, embedder, key, vector) VALUES (?, ?, ?, ?)",
            [(repo_id, embedder, key, _blob(vector)) for key, vector in entries.items()],
        )

    # -- search ------------------------------------------------------------------------------------------
    def lexical_search(self, repo_id: int, branch: str, query: str, limit: int) -> list[tuple[str, float]]:
        """BM25 over summary morphemes, name and path identifiers and code identifiers, best first."""
        terms = list(dict.fromkeys(analyze(query)))[:_MAX_QUERY_TERMS]
        if not terms or limit < 1:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        rows = self._db().execute(
            f"SELECT d.id, -{_BM25} AS score FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid "
            f"WHERE documents_fts MATCH ? AND documents_fts.scope = ? ORDER BY {_BM25} LIMIT ?",
            (match, scope_of(repo_id, branch), limit),
        ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def vector_search(self, repo_id: int, branch: str, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Exact inner-product search in the branch's Faiss index, best first."""
        if limit < 1:
            return []
        scope = scope_of(repo_id, branch)
        with self._scope_lock(scope):
            index = self._index(scope)
            if index is None or index.ntotal == 0:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            if query.shape[1] != index.d:
                raise StoreError(
                    f"RAGCODE_EMBEDDER: the index of repository {repo_id}@{branch} has {index.d}-dimensional "
                    f"vectors but the embedder gives {query.shape[1]}; run `ragcode index --full` to re-embed"
                )
            scores, rowids = index.search(query, min(limit, index.ntotal))
        pairs = [(int(r), float(s)) for r, s in zip(rowids[0], scores[0], strict=True) if r >= 0]
        if not pairs:
            return []
        marks = ",".join("?" * len(pairs))
        ids = dict(self._db().execute(
            f"SELECT rowid, id FROM documents WHERE scope = ? AND rowid IN ({marks})",
            (scope, *(r for r, _ in pairs)),
        ).fetchall())
        return [(ids[r], s) for r, s in pairs if r in ids]

    def sample_vectors(self, repo_id: int, branch: str, dimension: int, limit: int) -> np.ndarray:
        """The vectors of the ``limit`` lowest document ids (hashes, so an even sample) of ``dimension``."""
        rows = self._db().execute(
            "SELECT vector FROM documents WHERE scope = ? AND length(vector) = ? ORDER BY id LIMIT ?",
            (scope_of(repo_id, branch), 4 * dimension, max(limit, 0))).fetchall()
        if not rows:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.vstack([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def ping(self) -> bool:
        """True when SQLite answers."""
        try:
            self._db().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        """Close every connection."""
        with self._guard:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error) around a block."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
