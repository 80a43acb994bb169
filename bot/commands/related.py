"""Related functions: the direct callers and callees of the best results, from the calls recorded at index time.

A call is recorded by name (``bot/indexer/tags.py``); here it is resolved within the repository, best effort: to the
functions of that name in the module an import names (``name@module``), else in the caller's own file, else to the
functions of that name anywhere as long as there are at most ``MAX_AMBIGUOUS`` of them (``save`` defined in ten
classes says nothing about which one is meant, so it links nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest

from bot.commands.views import View, callers, documents, find_names
from bot.documents import Document, DocumentRef, Hit, Overlay, short_name
from bot.store.base import Store

MAX_AMBIGUOUS = 2  # a bare name defined in more places than this links to none of them
SEEDS = 3  # the best results whose callers and callees are looked up
MAX_DEFINITIONS = 2_000  # functions read for the names the seeds call (a common name can have hundreds)
_MODULE_FILES = ("__init__", "index", "mod")  # a package's or folder's own module file


def callable_name(name: str) -> bool:
    """True for functions and methods (and their parts), not module-level code or line windows."""
    return not name.startswith("<")


def _base(name: str) -> str:
    """A qualified name without its part number."""
    return name.split("#", 1)[0]


def _stem(path: str) -> str:
    head, dot, tail = path.rpartition(".")
    return head if dot and "/" not in tail else path


def module_matches(path: str, hint: str) -> bool:
    """True when the file ``path`` is the module an import names (``hint``: a path without extension)."""
    stem = _stem(path)
    folder, _, file = stem.rpartition("/")
    candidates = (stem, folder) if file in _MODULE_FILES else (stem,)
    return any(candidate == hint or candidate.endswith("/" + hint) for candidate in candidates)


def _hints(calls: Sequence[str]) -> tuple[list[str], dict[str, set[str]]]:
    """The called names in order, and the modules imports say each comes from."""
    names: list[str] = []
    hints: dict[str, set[str]] = {}
    for entry in calls:
        name, at, hint = entry.partition("@")
        if at:
            hints.setdefault(name, set()).add(hint)
        else:
            names.append(name)
    return list(dict.fromkeys(names)), hints


def resolve(caller_path: str, hints: set[str], candidates: Sequence[tuple[str, DocumentRef]]
            ) -> list[tuple[str, DocumentRef]]:
    """Which of the functions named alike (``candidates``) a call from ``caller_path`` means."""
    if hints:
        return [c for c in candidates if any(module_matches(c[1].path, hint) for hint in hints)]
    same_file = [c for c in candidates if c[1].path == caller_path]
    if same_file:
        return same_file
    return list(candidates) if len(candidates) <= MAX_AMBIGUOUS else []


def _definitions(found: Sequence[tuple[str, DocumentRef]]) -> dict[str, list[tuple[str, DocumentRef]]]:
    """Functions by short name, one entry per function (the first of a long function's parts)."""
    first: dict[tuple[str, str, str], tuple[str, DocumentRef]] = {}
    for branch, ref in sorted(found, key=lambda item: item[1].start_line):
        if callable_name(ref.name):
            first.setdefault((branch, ref.path, _base(ref.name)), (branch, ref))
    by_name: dict[str, list[tuple[str, DocumentRef]]] = {}
    for branch, ref in first.values():
        by_name.setdefault(short_name(ref.name), []).append((branch, ref))
    return by_name


def _same(a: DocumentRef | Document, b: DocumentRef | Document) -> bool:
    return (a.path, _base(a.name)) == (b.path, _base(b.name))


def related(store: Store, repo_id: int, views: Sequence[View], hits: Sequence[Hit], limit: int,
            overlay: Overlay | None = None) -> list[Hit]:
    """Up to ``limit`` callers and callees of the best results (each once, none of the results themselves), taken
    in turn from each result, callees first; ``Hit.relation`` says which and ``Hit.related_to`` of what."""
    seeds = [hit.document for hit in hits if callable_name(hit.document.name)][:SEEDS]
    if limit < 1 or not seeds:
        return []
    called = {seed.id: _hints(seed.calls) for seed in seeds}
    names = {name for wanted, _ in called.values() for name in wanted} | {short_name(seed.name) for seed in seeds}
    definitions = _definitions(find_names(store, repo_id, views, sorted(names), MAX_DEFINITIONS))
    calling = callers(store, repo_id, views, sorted({short_name(seed.name) for seed in seeds}))
    queues: list[list[tuple[str, DocumentRef, str, Document]]] = []
    for seed in seeds:
        queue: list[tuple[str, DocumentRef, str, Document]] = []
        wanted, hints = called[seed.id]
        for name in wanted:
            candidates = [c for c in definitions.get(name, []) if not _same(c[1], seed)]
            queue += [(branch, ref, "callee", seed) for branch, ref in resolve(seed.path, hints.get(name, set()),
                                                                                candidates)]
        name = short_name(seed.name)
        for branch, ref in calling:
            if not callable_name(ref.name) or _same(ref, seed):
                continue
            _, caller_hints = _hints(ref.calls)
            meant = resolve(ref.path, caller_hints.get(name, set()), definitions.get(name, []))
            if any(_same(target, seed) for _, target in meant):
                queue.append((branch, ref, "caller", seed))
        queues.append(queue)
    chosen: list[tuple[str, DocumentRef, str, Document]] = []
    taken = {hit.document.id for hit in hits}
    for round_ in zip_longest(*queues):
        for item in round_:
            if item is not None and item[1].id not in taken and len(chosen) < limit:
                taken.add(item[1].id)
                chosen.append(item)
    loaded = {doc.id: doc for doc in documents(store, repo_id, [(branch, ref) for branch, ref, _, _ in chosen])}
    head = overlay.head if overlay is not None else ""
    return [Hit(document=loaded[ref.id], score=0.0, relation=relation, related_to=seed.name,
                commit=head if overlay is not None and branch == overlay.branch else "")
            for branch, ref, relation, seed in chosen if ref.id in loaded]
