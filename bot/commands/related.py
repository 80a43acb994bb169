"""Related functions: the direct callers and callees of the best results, from the calls recorded at index time.

A call is recorded by name and by what it is called on (``bot/indexer/tags.py``); here it is resolved within the
repository, best effort, without type inference:

- a bare call: to the functions of that name in the module an import names (``name@module``), else in the caller's
  own file, else anywhere as long as there are at most ``MAX_AMBIGUOUS`` of them (``save`` defined in ten classes
  says nothing about which one is meant, so it links nothing);
- ``self.name()``: to the caller's own class's method, else (inherited) a method of another class in the same file,
  else anywhere if few; ``super().name()`` the same without the caller's class;
- ``Thing.name()``: to the methods of a class ``Thing``; ``thing.name()``: to the methods of a class named so
  (``response`` for ``Response``, ``prices`` for ``Price``), else of classes whose name holds the receiver's
  (``store`` for ``LocalStore``, ``github_app`` for ``GitHubApp``), or to the functions of a module named so
  (``pricing.total()``, also when imported under another name); a fitting class in the caller's file first, else
  the best fits (at most ``MAX_AMBIGUOUS``); else to a method in the caller's file. A method on an object whose
  type nothing tells (``session.client()`` of a library) links nothing rather than the repository's one
  ``client`` method.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Called:
    """What a unit's recorded calls say: the names in order, the modules imports name, what each was called on."""

    names: list[str]
    hints: dict[str, set[str]]
    receivers: dict[str, set[str]]  # "" for a bare call beside calls on receivers


def called(calls: Sequence[str]) -> Called:
    """Parse a unit's recorded calls (``name``, ``name@module``, ``name^receiver``)."""
    result = Called([], {}, {})
    for entry in calls:
        name, at, hint = entry.partition("@")
        if at:
            result.hints.setdefault(name, set()).add(hint)
            continue
        name, caret, on = entry.partition("^")
        if caret:
            result.receivers.setdefault(name, set()).add(on)
        else:
            result.names.append(name)
    result.names[:] = dict.fromkeys(result.names)
    return result


def _owner(name: str) -> str:
    """The class (or object) a function is a method of; "" for a plain or nested function."""
    head, dot, _ = _base(name).rpartition(".")
    owner = head.rpartition(".")[2]
    return owner if dot and owner != "<locals>" else ""


def _squash(word: str) -> str:
    """A name without underscores, in lower case: ``github_app`` and ``GitHubApp`` compare alike."""
    return word.replace("_", "").lower()


def _few(found: list[tuple[str, DocumentRef]]) -> list[tuple[str, DocumentRef]]:
    """``found`` when it is few enough to mean something (``MAX_AMBIGUOUS``), else nothing."""
    return found if len(found) <= MAX_AMBIGUOUS else []


def _fit(receiver: str, owner: str) -> int:
    """How plausibly ``receiver.name()`` calls a method of class ``owner``: 2 when the names are the same (a plural
    receiver as its singular), 1 when one holds the other (``store`` and ``LocalStore``), else 0."""
    if receiver[:1].isupper():
        return 2 if owner == receiver else 0
    kind = _squash(owner)
    words = {_squash(receiver), _squash(receiver).removesuffix("s")}
    if kind in words:
        return 2
    return int(any(min(len(word), len(kind)) >= 3 and (word in kind or kind in word) for word in words))


def _module_names(path: str) -> tuple[str, str]:
    """The names a file's functions are called through as a module: its file's and its folder's."""
    folder, _, file = _stem(path).rpartition("/")
    return file, folder.rpartition("/")[2]


def _on_receiver(caller_path: str, caller_name: str, receiver: str, candidates: Sequence[tuple[str, DocumentRef]]
                 ) -> list[tuple[str, DocumentRef]]:
    """Which of ``candidates`` a call ``receiver.name()`` from the function ``caller_name`` means."""
    methods = [c for c in candidates if _owner(c[1].name)]
    local = [c for c in methods if c[1].path == caller_path]
    if receiver in ("self", "super"):
        own = _owner(caller_name.split(".<locals>.", 1)[0])  # a closure's ``self`` is its method's
        mine = [c for c in local if _owner(c[1].name) == own]
        if receiver == "self" and mine:
            return mine
        inherited = [c for c in methods if _owner(c[1].name) != own]
        return [c for c in inherited if c[1].path == caller_path] or _few(inherited)
    if receiver == "?":
        return _few(local)
    fits = [(_fit(receiver, _owner(c[1].name)), c) for c in methods]
    nearby = [c for fit, c in fits if fit and c[1].path == caller_path]
    if nearby:
        return nearby
    best = max((fit for fit, _ in fits), default=0)
    named = [c for fit, c in fits if fit and fit == best]
    named += [c for c in candidates if not _owner(c[1].name) and receiver in _module_names(c[1].path)]
    return _few(named) if named else _few(local)


def resolve(caller_path: str, hints: set[str], candidates: Sequence[tuple[str, DocumentRef]], *,
            caller_name: str = "", receivers: Set[str] = frozenset()) -> list[tuple[str, DocumentRef]]:
    """Which of the functions named alike (``candidates``) a call from ``caller_name`` in ``caller_path`` means:
    its bare call (by ``hints`` from imports, the file, or few enough) and its calls on ``receivers``."""
    kinds = set(receivers)
    if hints or not kinds:
        kinds.add("")  # a bare call (hints come only from bare calls)
    found: dict[str, tuple[str, DocumentRef]] = {}
    for receiver in kinds:
        if receiver:
            meant = _on_receiver(caller_path, caller_name, receiver, candidates)
        elif hints:
            meant = [c for c in candidates if any(module_matches(c[1].path, hint) for hint in hints)]
        else:
            meant = [c for c in candidates if c[1].path == caller_path] or _few(list(candidates))
        found.update((c[1].id, c) for c in meant)
    return [c for c in candidates if c[1].id in found]


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
    calls = {seed.id: called(seed.calls) for seed in seeds}
    names = {name for call in calls.values() for name in call.names} | {short_name(seed.name) for seed in seeds}
    definitions = _definitions(find_names(store, repo_id, views, sorted(names), MAX_DEFINITIONS))
    calling = [(branch, ref, called(ref.calls))  # each caller's calls parsed once, whichever seed it calls
               for branch, ref in callers(store, repo_id, views, sorted({short_name(seed.name) for seed in seeds}))]
    queues: list[list[tuple[str, DocumentRef, str, Document]]] = []
    for seed in seeds:
        queue: list[tuple[str, DocumentRef, str, Document]] = []
        call = calls[seed.id]
        for name in call.names:
            candidates = [c for c in definitions.get(name, []) if not _same(c[1], seed)]
            meant = resolve(seed.path, call.hints.get(name, set()), candidates, caller_name=seed.name,
                            receivers=call.receivers.get(name, set()))
            queue += [(branch, ref, "callee", seed) for branch, ref in meant]
        name = short_name(seed.name)
        for branch, ref, theirs in calling:
            if not callable_name(ref.name) or _same(ref, seed) or name not in theirs.names:  # (another seed's name)
                continue
            meant = resolve(ref.path, theirs.hints.get(name, set()), definitions.get(name, []), caller_name=ref.name,
                            receivers=theirs.receivers.get(name, set()))
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
