"""Planning a run: which files changed between two commits, and what became of each function."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import git
from gitdb.exc import BadName, BadObject

from bot.documents import DocumentRef, Unit, document_id
from bot.indexer.chunker import DEFAULT_LIMITS, Limits, TooLarge, chunk_file, unit_size
from bot.indexer.filters import IndexOptions, content_skip_reason, decode, path_skip_reason
from bot.indexer.secrets import redact

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class Changes:
    """Paths to re-chunk at the new commit and paths whose documents go away."""

    changed: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    full: bool = False

    @property
    def files_changed(self) -> int:
        """How many files the run looks at."""
        return len(self.changed | self.gone)


@dataclass
class Plan:
    """What becomes of every function in the changed files."""

    to_summarize: list[tuple[str, Unit]] = field(default_factory=list)  # (document id, unit): added or updated
    reused: list[tuple[str, Unit, DocumentRef]] = field(default_factory=list)  # moved, shifted or re-embedded
    removed: list[DocumentRef] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    kept_hashes: dict[str, str] = field(default_factory=dict)  # document id -> stored hash, for retried summaries
    secrets_redacted: int = 0


def resolve_commit(repository: git.Repo, sha: str | None) -> git.Commit | None:
    """The commit ``sha`` names in ``repository``, or None when it is unknown there."""
    if not sha:
        return None
    try:
        return repository.commit(sha)
    except (BadName, BadObject, ValueError):
        return None


def find_changes(repository: git.Repo, old: git.Commit | None, new: git.Commit, full: bool) -> Changes:
    """Changed and removed paths from ``old`` to ``new`` (renames followed); everything when there is no ``old``."""
    if old is None or full:
        paths = {str(blob.path) for blob in new.tree.traverse() if isinstance(blob, git.Blob)}
        return Changes(changed=paths, full=True)
    changes = Changes()
    for diff in old.diff(new, M=True):
        if diff.change_type in ("D", "R") and diff.a_path:
            changes.gone.add(diff.a_path)
        if diff.change_type != "D" and diff.b_path:
            changes.changed.add(diff.b_path)
    return changes


def read_units(
    new: git.Commit, paths: Iterable[str], options: IndexOptions, max_unit_lines: int, plan: Plan,
    progress: Progress | None = None, limits: Limits = DEFAULT_LIMITS,
) -> Iterator[Unit]:
    """Units of the files at ``new``: filtered, decoded, redacted and chunked; skipped files noted in ``plan``.

    Files are read in path order. A file whose units would exceed a per-file limit is skipped; once a file's
    units would take the run past ``limits.run_units`` or ``limits.run_chars``, it and every later file are
    skipped, so the same run always indexes the same files.
    """
    wanted = sorted(paths)
    units_left, chars_left = limits.run_units, limits.run_chars
    run_full: str | None = None
    for done, path in enumerate(wanted, 1):
        if progress and (done % 200 == 0 or done == len(wanted)):
            progress("chunking", done, len(wanted))
        reason = path_skip_reason(path, options)
        if reason:
            if reason not in ("not source code", "not included"):
                plan.skipped.append((path, reason))
            continue
        try:
            blob = new.tree / path
        except KeyError:
            continue
        if blob.type != "blob" or blob.mode == 0o120000:  # submodules and symlinks carry no code of their own
            continue
        if run_full:
            plan.skipped.append((path, run_full))
            continue
        if blob.size > options.max_file_bytes:
            plan.skipped.append((path, f"larger than {options.max_file_bytes} bytes"))
            continue
        data = blob.data_stream.read()
        reason = content_skip_reason(data, options, path)
        if reason:
            plan.skipped.append((path, reason))
            continue
        text, secrets = redact(decode(data), path)
        plan.secrets_redacted += secrets
        try:
            units = chunk_file(path, text, max_unit_lines, limits)
        except TooLarge as error:
            plan.skipped.append((path, str(error)))
            continue
        except Exception:  # a chunker bug must not stop the run; the file is reported as skipped
            log.exception("chunking failed", extra={"path": path})
            plan.skipped.append((path, "could not be chunked"))
            continue
        chars = sum(map(unit_size, units))
        if len(units) > units_left or chars > chars_left:
            run_full = (
                f"not indexed: the run reached its limit of {limits.run_units} units (RAGCODE_MAX_RUN_UNITS)"
                if len(units) > units_left else
                f"not indexed: the run reached its limit of {limits.run_chars} characters (RAGCODE_MAX_RUN_UNIT_CHARS)"
            )
            log.warning("run limit reached", extra={"path": path, "reason": run_full})
            plan.skipped.append((path, run_full))
            continue
        units_left -= len(units)
        chars_left -= chars
        yield from units


def classify(
    repo_id: int, branch: str, units: Iterable[Unit], old_refs: Iterable[DocumentRef], reembed: bool, plan: Plan,
) -> Plan:
    """Sort each unit into added, updated, moved, unchanged; what is left of the old documents is removed."""
    old_by_id = {ref.id: ref for ref in old_refs}
    unmatched: list[tuple[str, Unit]] = []
    for unit in units:
        doc_id = document_id(repo_id, branch, unit.path, unit.name, unit.ordinal)
        old = old_by_id.pop(doc_id, None)
        if old is None:
            unmatched.append((doc_id, unit))
        elif old.content_hash != unit.hash:
            plan.updated += 1
            plan.to_summarize.append((doc_id, unit))
        else:
            plan.unchanged += 1
            if reembed or (old.start_line, old.end_line) != (unit.start_line, unit.end_line):
                plan.reused.append((doc_id, unit, old))
    leftovers: dict[str, list[DocumentRef]] = {}
    for ref in old_by_id.values():
        leftovers.setdefault(ref.content_hash, []).append(ref)
    for doc_id, unit in unmatched:
        candidates = leftovers.get(unit.hash)
        if candidates:
            plan.moved += 1
            plan.reused.append((doc_id, unit, candidates.pop()))
        else:
            plan.added += 1
            plan.to_summarize.append((doc_id, unit))
    moved_from = {ref.id for _, _, ref in plan.reused}
    plan.removed = [ref for ref in old_by_id.values() if ref.id not in moved_from]
    return plan


def deletions(plan: Plan) -> list[str]:
    """Ids to delete: removed documents and the old copies of moved ones."""
    return [ref.id for ref in plan.removed] + [ref.id for doc_id, _, ref in plan.reused if ref.id != doc_id]
