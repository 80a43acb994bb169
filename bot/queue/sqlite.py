"""The one-machine job queue in SQLite (WAL): deduplicated deliveries, serialized and coalesced jobs, retries.

Order: jobs with one ``serial`` key (one repository) run one at a time in the order they were queued, also
across retries: a job waiting in backoff holds back the later jobs of its repository. An attempt counts when
a job is claimed, so a job that kills the process is parked after ``max_attempts`` restarts instead of
crash-looping the service. One process runs the workers of a queue file (``recover`` at its start puts back
whatever was running); other processes may enqueue into it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.queue.base import Enqueued, Job, JobSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at REAL NOT NULL,
    jobs TEXT NOT NULL,
    body_hash TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_body ON deliveries (body_hash);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    repo TEXT NOT NULL,
    repo_id INTEGER NOT NULL DEFAULT 0,
    serial TEXT,
    scope TEXT,
    coalesce_key TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivery TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_scope ON jobs (scope, state);
CREATE INDEX IF NOT EXISTS jobs_serial ON jobs (serial, state);
CREATE TABLE IF NOT EXISTS commands (
    repo_id INTEGER NOT NULL,
    user TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_at ON commands (repo_id, at);
CREATE TABLE IF NOT EXISTS marks (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    reply TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS replies_at ON replies (at);
"""

STATES = ("queued", "running", "parked", "done")
SCHEMA_VERSION = 2  # 2: jobs and rate limits by repository id, deliveries by body hash


def merge_payloads(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Coalesce two queued runs of one branch: the newer payload wins, a full run stays full.

    The merged run starts fresh: the check run an earlier attempt opened is handed over as superseded, to be
    completed by the run that covers it.
    """
    merged = {**old, **new}
    merged["full"] = bool(old.get("full")) or bool(new.get("full"))
    merged["deliveries"] = list(dict.fromkeys([*old.get("deliveries", []), *new.get("deliveries", [])]))
    superseded = [*old.get("superseded_checks", []), *([old["check_run"]] if old.get("check_run") else [])]
    merged.pop("check_run", None)
    if superseded:
        merged["superseded_checks"] = superseded
    return merged


class JobQueue:
    """Jobs and deliveries in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path, *, max_attempts: int = 5, backoff: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._local = threading.local()
        # Writers queue on this lock rather than in SQLite's busy handler, whose sleeps grow to 100 ms.
        self._write_lock = threading.Lock()
        self._migrate(self._db())

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Create the schema; a queue of an older format is set aside (its jobs are re-sent by GitHub or
        ``ragcode reconcile``)."""
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            db.executescript(SCHEMA)  # tables added since (IF NOT EXISTS: nothing else changes)
            return
        for table in ("deliveries", "jobs", "commands"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def _tx(self) -> _Transaction:
        return _Transaction(self._db(), self._write_lock)

    def enqueue(self, delivery: str, event: str, specs: Sequence[JobSpec], body_hash: str | None = None) -> Enqueued:
        """Record a delivery and queue its jobs once; a redelivery returns the first one's jobs.

        ``body_hash`` (of the signed body) catches a captured delivery replayed under fresh delivery ids.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT jobs FROM deliveries WHERE id = ? OR body_hash = ?",
                             (delivery, body_hash)).fetchone()
            if row is not None:
                return Enqueued(json.loads(row[0]), new=False)
            ids = [self._add(db, delivery, spec, now) for spec in specs]
            db.execute(
                "INSERT INTO deliveries (id, event, received_at, jobs, body_hash) VALUES (?, ?, ?, ?, ?)",
                (delivery, event, now, json.dumps(ids), body_hash),
            )
            return Enqueued(ids, new=True)

    def _add(self, db: sqlite3.Connection, delivery: str, spec: JobSpec, now: float) -> int:
        payload = {**spec.payload, "deliveries": [delivery]}
        if spec.coalesce is not None and spec.scope is not None:
            # Only the newest job of the scope may absorb this one, so a later drop is never jumped over.
            last = db.execute(
                "SELECT id, state, payload, coalesce_key FROM jobs WHERE scope = ? AND state != 'done'"
                " ORDER BY id DESC LIMIT 1",
                (spec.scope,),
            ).fetchone()
            if last is not None and last[1] == "queued" and last[3] == spec.coalesce:
                merged = merge_payloads(json.loads(last[2]), payload)
                db.execute("UPDATE jobs SET payload = ?, attempts = 0, not_before = 0, error = '', updated_at = ?"
                           " WHERE id = ?", (json.dumps(merged), now, last[0]))
                return int(last[0])
        cursor = db.execute(
            "INSERT INTO jobs (kind, repo, repo_id, serial, scope, coalesce_key, payload, state, created_at,"
            " updated_at, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            (spec.kind, spec.repo, spec.repo_id, spec.serial, spec.scope, spec.coalesce, json.dumps(payload), now,
             now, delivery),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add(self, spec: JobSpec, origin: str = "") -> int:
        """Queue a job that no delivery carries (e.g. a re-index a command asked for)."""
        with self._tx() as db:
            return self._add(db, origin, spec, time.time())

    def claim(self) -> Job | None:
        """Take the oldest runnable job that is first in line for its serial key, mark it running and count
        the attempt."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT id, kind, repo, payload, attempts, delivery, repo_id FROM jobs j"
                " WHERE state = 'queued' AND not_before <= ?"
                " AND (serial IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r WHERE r.serial = j.serial"
                "      AND (r.state = 'running' OR (r.state = 'queued' AND r.id < j.id))))"
                " ORDER BY id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                       (now, row[0]))
        payload = json.loads(row[3])
        return Job(row[0], row[1], row[2], payload, row[4] + 1, row[5], payload.get("deliveries", []), row[6])

    def update_payload(self, job_id: int, changes: dict[str, Any]) -> None:
        """Remember progress of a running job (e.g. its check run) for a retry."""
        with self._tx() as db:
            row = db.execute("SELECT payload FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None:
                payload = {**json.loads(row[0]), **changes}
                db.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps(payload), job_id))

    def heartbeat(self, job_id: int) -> None:
        """Note that a running job is alive (one process owns the queue's workers: nothing can take it)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ? AND state = 'running'", (time.time(), job_id))

    def release(self, job_id: int) -> None:
        """Put a running job back at the head of its line, this attempt not counted."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), updated_at = ?"
                       " WHERE id = ? AND state = 'running'", (time.time(), job_id))

    def finish(self, job_id: int) -> None:
        """Mark a job done."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = 'done', error = '', updated_at = ? WHERE id = ?", (time.time(), job_id))

    def fail(self, job_id: int, error: str) -> str:
        """Retry a failed job later (exponential backoff), or park it after too many attempts; the new state."""
        now = time.time()
        with self._tx() as db:
            attempts = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
            state = "parked" if attempts >= self.max_attempts else "queued"
            delay = self.backoff * 2 ** (max(attempts, 1) - 1)
            db.execute(
                "UPDATE jobs SET state = ?, not_before = ?, error = ?, updated_at = ? WHERE id = ?",
                (state, now + delay, error[:2000], now, job_id),
            )
        return state

    def recover(self) -> int:
        """Put jobs left running by a killed process back in the queue, parking those that have crashed it
        ``max_attempts`` times; how many were put back."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = 'parked', error = ?, updated_at = ? WHERE state = 'running' AND attempts >= ?",
                (f"the process stopped during each of {self.max_attempts} attempts (crash or kill)", now,
                 self.max_attempts))
            return db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'").rowcount

    def requeue_parked(self) -> int:
        """Give every parked job a fresh set of attempts; how many."""
        with self._tx() as db:
            return db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0 WHERE state = 'parked'"
            ).rowcount

    def counts(self) -> dict[str, int]:
        """Jobs queued, running and parked."""
        rows = dict(self._db().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        return {state: int(rows.get(state, 0)) for state in ("queued", "running", "parked")}

    def parked(self) -> list[dict[str, Any]]:
        """Parked jobs with their last error, for ``ragcode status``."""
        rows = self._db().execute(
            "SELECT id, kind, repo, repo_id, attempts, error, updated_at FROM jobs WHERE state = 'parked' ORDER BY id"
        ).fetchall()
        keys = ("id", "kind", "repo", "repo_id", "attempts", "error", "updated_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def full_index_pending(self, repo_id: int) -> bool:
        """True while a full index of the repository is queued or running."""
        rows = self._db().execute(
            "SELECT payload FROM jobs WHERE repo_id = ? AND kind = 'index' AND state IN ('queued', 'running')",
            (repo_id,),
        ).fetchall()
        return any(json.loads(row[0]).get("full") for row in rows)

    def index_pending(self, repo_id: int) -> bool:
        """True while any index run of the repository is queued or running."""
        return self._db().execute(
            "SELECT 1 FROM jobs WHERE repo_id = ? AND kind = 'index' AND state IN ('queued', 'running') LIMIT 1",
            (repo_id,),
        ).fetchone() is not None

    def record_reply(self, reply: dict[str, Any], ttl: float) -> None:
        """Remember a reply for the feedback pass."""
        at = float(reply.get("at") or time.time())
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO replies (kind, id, reply, at, expires_at) VALUES (?, ?, ?, ?, ?)",
                       (str(reply["kind"]), int(reply["id"]), json.dumps(reply), at, time.time() + ttl))

    def recent_replies(self, limit: int) -> list[dict[str, Any]]:
        """Replies not expired, newest first."""
        rows = self._db().execute("SELECT reply FROM replies WHERE expires_at > ? ORDER BY at DESC LIMIT ?",
                                  (time.time(), limit)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def record_command(self, repo_id: int, user: str, *, per_user: int, per_repo: int, window: float = 3600) -> bool:
        """Count a command against the hourly limits of its user and repository; False when over either."""
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM commands WHERE at < ?", (now - window,))
            by_user, by_repo = db.execute(
                "SELECT SUM(user = ?), COUNT(*) FROM commands WHERE repo_id = ? AND at >= ?",
                (user, repo_id, now - window),
            ).fetchone()
            if (by_user or 0) >= per_user or (by_repo or 0) >= per_repo:
                return False
            db.execute("INSERT INTO commands (repo_id, user, at) VALUES (?, ?, ?)", (repo_id, user, now))
            return True

    def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True only when it was not recorded (or had expired)."""
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM marks WHERE key = ? AND expires_at <= ?", (key, now))
            return db.execute("INSERT OR IGNORE INTO marks (key, expires_at) VALUES (?, ?)",
                              (key, now + ttl)).rowcount == 1

    def prune(self, older_than: float = 7 * 86400) -> None:
        """Forget done jobs and deliveries older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE state = 'done' AND updated_at < ?", (cutoff,))
            db.execute("DELETE FROM deliveries WHERE received_at < ?", (cutoff,))
            db.execute("DELETE FROM marks WHERE expires_at < ?", (time.time(),))
            db.execute("DELETE FROM replies WHERE expires_at < ?", (time.time(),))

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error) around a block."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()
