"""What each unit calls, from tree-sitter queries rather than hand-written tree walking.

Every grammar wheel ships ``queries/tags.scm``: the definition and call queries behind GitHub's code navigation
(and Aider's repository map). A language's calls are its ``@reference.call`` captures; where a grammar's file has
none (C, C++), misses a kind (Rust's ``Config::load()``) or builds on another's (TypeScript on JavaScript), small
query files in ``bot/indexer/queries/`` fill in, as they do for imports (Python ``from x import y``, JavaScript
``import {y} from './x'``), which say where a called name comes from. A pattern that asserts ``(#is-not? local)`` (Ruby's bare identifiers) is honoured
with the grammar's ``queries/locals.scm``.

Each call is recorded on the innermost unit whose lines hold it, as the called name and, when an import says
where that name comes from, also as ``name@module`` (a path without extension, e.g. ``shop/pricing``). A call on a
receiver (``self.total()``, ``store.upsert()``, ``Money.parse()``; the ``@call.receiver`` captures of
``queries/<language>-receivers.scm``) also records what it was called on, as ``name^self``, ``name^store``,
``name^Money`` (``name^super`` for the base class, ``name^?`` for an expression such as ``rows[0].run()``; a call's
result is named by what was called: ``make().run()`` is ``run^make``), and ``name^`` when the unit calls the bare
name too: which functions a method call can mean depends on it. A method of a literal (``", ".join()``) is not
recorded. Names are resolved to functions of the repository only when a question is answered
(``bot/commands/related.py``), so an index never holds links that a later push would make stale.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from tree_sitter import Node, Query, QueryCursor, Tree

from bot.documents import Unit
from bot.indexer.languages import grammar

log = logging.getLogger(__name__)

MAX_CALLS = 64  # distinct names recorded per unit
MAX_CAPTURES = 20_000  # call captures read per file; a file with more keeps the first ones
MAX_MATCHES = 4_096  # in-progress matches tree-sitter keeps per query (its own bound on memory)
# Matches start at most this deep in the tree: deeper calls are not recorded. Real code nests far less; a chain of
# thousands of calls (``x.go().go()…``) made the query's time grow with the square of its length (8 s for 100 KB).
MAX_DEPTH = 256
MAX_RECEIVERS = 4  # receivers recorded per called name and unit
_NAME = re.compile(r"[^\s@]{1,100}")
_HINT = re.compile(r"[^\s@]{1,300}")
_OWN = "bot.indexer"


def _own(*names: str) -> tuple[tuple[str, str], ...]:
    """Our query files of those names (``bot/indexer/queries/<name>.scm``)."""
    return tuple((_OWN, f"queries/{name}.scm") for name in names)


# language -> query files (package, path), concatenated: the grammar's tags, then ours for calls it misses and for
# what methods are called on (``@call.receiver``)
_JS = (("tree_sitter_javascript", "queries/tags.scm"), *_own("javascript-receivers"))
_TS = ("tree_sitter_typescript", "queries/tags.scm")
_C = _own("c-calls", "c-receivers")
_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (("tree_sitter_python", "queries/tags.scm"), *_own("python-receivers")),
    "javascript": _JS,
    "typescript": (*_JS, _TS),
    "tsx": (*_JS, _TS),
    "java": (("tree_sitter_java", "queries/tags.scm"), *_own("java-receivers")),
    "go": (("tree_sitter_go", "queries/tags.scm"), *_own("go-receivers")),
    "rust": (("tree_sitter_rust", "queries/tags.scm"), *_own("rust-calls", "rust-receivers")),
    "c": (("tree_sitter_c", "queries/tags.scm"), *_C),
    "cpp": (("tree_sitter_cpp", "queries/tags.scm"), *_C, *_own("cpp-calls", "cpp-receivers")),
    "ruby": (("tree_sitter_ruby", "queries/tags.scm"), *_own("ruby-receivers")),
}
_LOCALS = {"ruby": ("tree_sitter_ruby", "queries/locals.scm")}
_JS_IMPORTS = _own("javascript-imports")
_IMPORTS = {"python": _own("python-imports"), "javascript": _JS_IMPORTS, "typescript": _JS_IMPORTS, "tsx": _JS_IMPORTS}
_STATEMENTS = frozenset({"import_from_statement", "import_statement"})
_SELF = frozenset({"self", "this", "cls", "Self"})
_CALLS = frozenset({"call", "call_expression", "method_invocation"})
_MEMBERS = frozenset({"attribute", "member_expression", "field_expression", "selector_expression", "field_access",
                      "scoped_identifier", "qualified_identifier"})  # whose last named child is the member's name
_RECEIVER_BYTES = 200
_LITERALS = frozenset({  # a method of a literal (``", ".join``, ``[1, 2].map``) is never the repository's
    "string", "concatenated_string", "integer", "float", "list", "dictionary", "set", "tuple", "list_comprehension",
    "dictionary_comprehension", "set_comprehension", "generator_expression", "template_string", "string_literal",
    "raw_string_literal", "interpreted_string_literal", "array", "object", "number", "regex", "character_literal",
    "char_literal", "true", "false", "none", "null", "nil", "simple_symbol", "hash", "array_creation_expression"})
LITERAL = '"'  # what ``receiver`` says of a literal: such calls are not recorded
_RECEIVER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True)
class _Queries:
    """A language's compiled queries."""

    query: Query  # its tags, receivers and imports (only calls, receivers, imports enabled unless ``local_patterns``)
    local_patterns: frozenset[int]  # patterns that only match names that are not local variables
    locals: Query | None


def _read(package: str, path: str) -> str:
    return resources.files(package).joinpath(path).read_text(encoding="utf-8")


@functools.cache
def _queries(language: str) -> _Queries | None:
    """The compiled queries of a language (None for languages without tags): one query, so one walk of the tree."""
    sources = _TAGS.get(language)
    if sources is None:
        return None
    lang = grammar(language)
    text = "\n".join(_read(*source) for source in (*sources, *_IMPORTS.get(language, ())))
    query = Query(lang, text)
    local_patterns = frozenset(i for i in range(query.pattern_count)
                               if query.pattern_assertions(i).get("local") == (None, False))
    if not local_patterns:
        # only calls, receivers and imports are read: the other patterns (definitions, types, doc comments) would
        # only cost
        source = text.encode("utf-8")
        for i in range(query.pattern_count):
            pattern = source[query.start_byte_for_pattern(i):query.end_byte_for_pattern(i)]
            if not any(mark in pattern for mark in (b"@reference.call", b"@import.", b"@call.")):
                query.disable_pattern(i)
    locals_query = Query(lang, _read(*_LOCALS[language])) if language in _LOCALS else None
    return _Queries(query, local_patterns, locals_query)


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def receiver(target: Node) -> str:
    """What a method is called on, from the ``@call.receiver`` node: ``self``, ``super``, its last identifier (for a
    call's result, the called name), ``LITERAL``, or ``?`` for another expression. Only small nodes are read as
    text, so a chain of thousands of calls costs no more than its length."""
    if target.type in _LITERALS:
        return LITERAL
    if target.type in _CALLS:  # ``calibration(x).standardize()``, ``Cart(items).total()``: what made the object
        made = next((child for field in ("function", "name", "method")
                     if (child := target.child_by_field_name(field)) is not None), None)
        if made is None:
            return "?"
        if _small_text(made) == "super":  # ``super().save()``
            return "super"
        target = made
    if target.type in _MEMBERS and target.named_child_count:  # ``self._client``, ``a::b``: its last part
        target = target.named_child(target.named_child_count - 1)
    text = _small_text(target)
    if text in _SELF:
        return "self"
    if text == "super":
        return "super"
    text = text.lstrip("@$")
    return text if _RECEIVER.fullmatch(text) else "?"


def _small_text(node: Node) -> str:
    """A node's text when it is short enough to be a name, else ""."""
    return _text(node).strip() if node.end_byte - node.start_byte <= _RECEIVER_BYTES else ""


def _receivers(targets: list[Node], methods: list[Node]) -> dict[int, str]:
    """Start byte of each method name -> what it is called on. The captures come unpaired; a method's receiver is
    the one that ends last before the method's name (only ``.``, ``->`` or ``::`` lies between them)."""
    targets = sorted(targets, key=lambda node: node.end_byte)
    ends = [node.end_byte for node in targets]
    found: dict[int, str] = {}
    for method in methods:
        at = bisect.bisect_right(ends, method.start_byte) - 1
        if at >= 0:
            found[method.start_byte] = receiver(targets[at])
    return found


def _cursor(query: Query) -> QueryCursor:
    cursor = QueryCursor(query, match_limit=MAX_MATCHES)
    cursor.set_max_start_depth(MAX_DEPTH)
    return cursor


def _module_hint(language: str, path: str, module: str) -> str | None:
    """Where an imported module lives, as a repository path without extension (None when it cannot be told)."""
    directory = posixpath.dirname(path)
    if language == "python":
        dots = len(module) - len(module.lstrip("."))
        rest = module[dots:].replace(".", "/")
        if dots:
            for _ in range(dots - 1):
                directory = posixpath.dirname(directory)
            hint = posixpath.join(directory, rest) if rest else directory
        else:
            hint = rest
    elif module.startswith("."):
        hint = posixpath.normpath(posixpath.join(directory, module))
    else:
        hint = module.removeprefix("@/").removeprefix("~/")
    hint = re.sub(r"\.(?:[cm]?[jt]sx?)$", "", hint).strip("/")
    return hint if hint and not hint.startswith("..") and _HINT.fullmatch(hint) else None


def _statement(node: Node) -> Node:
    """The import statement a captured node is part of."""
    while node.parent is not None and node.type not in _STATEMENTS:
        node = node.parent
    return node


def _imports(language: str, path: str, captures: dict[str, list[Node]]) -> dict[str, tuple[str, str]]:
    """Local name -> (imported name, module hint) of a file's imports, from the captures of one walk: each name is
    tied to its statement's module and, when it is renamed (``as``), to the alias beside it."""
    modules = {_statement(node).start_byte: _text(node) for node in captures.get("import.module", [])}
    aliases = {node.parent.start_byte: _text(node) for node in captures.get("import.alias", [])
               if node.parent is not None}
    found: dict[str, tuple[str, str]] = {}
    for node in sorted(captures.get("import.name", []), key=lambda node: node.start_byte):  # the last import wins
        module = modules.get(_statement(node).start_byte)
        hint = _module_hint(language, path, module) if module else None
        name = _text(node)
        local = aliases.get(node.parent.start_byte, name) if node.parent is not None else name
        if hint and _NAME.fullmatch(name) and _NAME.fullmatch(local):
            found[local] = (name, hint)
    return found


def _local_names(queries: _Queries, root: Node) -> list[tuple[int, int, set[str]]]:
    """(start byte, end byte, names defined in it) of every local scope (``locals.scm``)."""
    if queries.locals is None:
        return []
    scopes: list[tuple[int, int, set[str]]] = []
    definitions: list[Node] = []
    for _, captures in _cursor(queries.locals).matches(root):
        for node in captures.get("local.scope", []):
            scopes.append((node.start_byte, node.end_byte, set()))
        definitions += captures.get("local.definition", [])
    for node in definitions:
        holders = [scope for scope in scopes if scope[0] <= node.start_byte and node.end_byte <= scope[1]]
        if holders:
            min(holders, key=lambda scope: scope[1] - scope[0])[2].add(_text(node))
    return scopes


def _scan(queries: _Queries, language: str, path: str, root: Node
          ) -> tuple[list[tuple[int, str, str | None]], dict[str, tuple[str, str]]]:
    """(row, called name, receiver) of every call in the tree (definitions' own names left out), and the file's
    imports."""
    if not queries.local_patterns:  # only calls, receivers and imports are enabled: every "name" is a called name
        captures = _cursor(queries.query).captures(root)
        names = sorted(captures.get("name", []), key=lambda node: node.start_byte)[:MAX_CAPTURES]
        paired = _receivers(captures.get("call.receiver", []), captures.get("call.method", []))
        calls = [(node.start_point[0], _text(node), paired.get(node.start_byte)) for node in names]
        return [call for call in calls if call[2] != LITERAL], _imports(language, path, captures)
    defined: set[tuple[int, int]] = set()
    found: list[tuple[Node, bool]] = []  # (name node, only if not a local name)
    on: dict[int, str] = {}
    for pattern, captures in _cursor(queries.query).matches(root):
        if any(key.startswith("definition.") for key in captures):
            defined.update((node.start_byte, node.end_byte) for node in captures.get("name", []))
        elif "call.method" in captures:
            on[captures["call.method"][0].start_byte] = receiver(captures["call.receiver"][0])
        elif "reference.call" in captures and len(found) < MAX_CAPTURES:
            found += [(node, pattern in queries.local_patterns) for node in captures.get("name", [])]
    scopes = _local_names(queries, root) if any(local for _, local in found) else []
    calls = []
    for node, local in sorted(found, key=lambda item: item[0].start_byte):
        if (node.start_byte, node.end_byte) in defined:
            continue
        name = _text(node)
        if local and any(start <= node.start_byte < end and name in names for start, end, names in scopes):
            continue
        target = on.get(node.start_byte)
        if target != LITERAL:
            calls.append((node.start_point[0], name, target))
    return calls, {}


def _owners(units: Sequence[Unit], rows: int) -> list[int]:
    """For each row, the index of the innermost unit holding it (-1: none): functions, else the module's code."""
    owners = [-1] * rows
    module = [i for i, unit in enumerate(units) if unit.kind == "module" or unit.name.startswith("<module>")]
    for i in module:
        for row in range(units[i].start_line - 1, min(units[i].end_line, rows)):
            owners[row] = i
    functions = [i for i in range(len(units)) if i not in module]
    for i in sorted(functions, key=lambda i: units[i].start_line - units[i].end_line):  # widest first
        for row in range(units[i].start_line - 1, min(units[i].end_line, rows)):
            owners[row] = i
    return owners


def with_calls(language: str, tree: Tree, path: str, units: list[Unit]) -> list[Unit]:
    """``units`` (of one parsed file) with the names each one calls; unchanged when the language has no tags or
    the queries fail (the call graph is best effort and never costs a file its units)."""
    try:
        queries = _queries(language)
        if queries is None or not units:
            return units
        calls, imports = _scan(queries, language, path, tree.root_node)
        owners = _owners(units, max(unit.end_line for unit in units))
        names: list[dict[str, dict[str | None, None]]] = [{} for _ in units]  # name -> its receivers, in order
        for row, name, on in calls:
            owner = owners[row] if row < len(owners) else -1
            if owner < 0 or not _NAME.fullmatch(name):
                continue
            called = names[owner]
            if name in called or len(called) < MAX_CALLS:
                receivers = called.setdefault(name, {})
                if on is None or len(receivers) < MAX_RECEIVERS + (None in receivers):
                    receivers[on] = None
    except Exception:  # a grammar or query surprise: the file keeps its units, without calls
        log.exception("reading the calls of %s failed", path)
        return units
    result = []
    for unit, called in zip(units, names, strict=True):
        entries = [entry for name, receivers in called.items() for entry in _entries(name, list(receivers), imports)]
        result.append(dataclasses.replace(unit, calls=tuple(dict.fromkeys(entries))) if entries else unit)
    return result


def _imported(receiver: str, imports: dict[str, tuple[str, str]]) -> str:
    """A receiver by the name it was imported under (a module or class renamed with ``as``)."""
    real = imports.get(receiver, (receiver, ""))[0]
    return real if _RECEIVER.fullmatch(real) else receiver


def _entries(name: str, receivers: list[str | None], imports: dict[str, tuple[str, str]]) -> list[str]:
    """What a unit records of the calls of one name: the name (as imported), where an import says it comes from,
    and what it was called on, by its imported name (``bodies.f()`` after ``import opensearch_bodies as bodies``
    is ``f^opensearch_bodies``); only an import's bare call is renamed by it."""
    entries: list[str] = []
    via = list(dict.fromkeys(_imported(on, imports) for on in receivers if on is not None))
    if None in receivers:
        real, hint = imports.get(name, (name, ""))
        entries += [real, f"{real}@{hint}"] if hint else [real]
        if via and real == name:
            entries.append(f"{name}^")
    if via:
        entries += [name, *(f"{name}^{on}" for on in via)]
    return entries
