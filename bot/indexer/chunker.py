"""Split a source file into function-level units with tree-sitter, or into line windows."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tree_sitter import Node, Parser, Tree

from bot.config import Settings
from bot.documents import Unit
from bot.indexer.languages import TEXT, grammar, language_for
from bot.indexer.tags import with_calls

__all__ = ["WINDOW_LINES", "Limits", "TooLarge", "chunk_file", "language_for"]

logger = logging.getLogger(__name__)

WINDOW_LINES = 60
MODULE = "<module>"
MAX_NAME_CHARS = 200  # a longer qualified name keeps its end: the innermost names tell the most


@dataclass(frozen=True)
class Limits:
    """Bounds on what files turn into; the README's configuration table names their settings."""

    unit_chars: int = 24_000  # code characters per unit; a longer unit is cut into parts
    header_chars: int = 500  # characters of one enclosing header or signature
    context_chars: int = 2_000  # characters of a unit's context (its enclosing headers, innermost kept)
    file_units: int = 2_000  # units per file; a file with more is not indexed
    file_chars: int = 2 * 1024 * 1024  # code and context characters of all units of a file
    run_units: int = 100_000  # units per indexing run
    run_chars: int = 100_000_000  # code and context characters of all units of a run

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits that the settings give."""
        return cls(
            settings.max_unit_chars, settings.max_header_chars, settings.max_context_chars, settings.max_file_units,
            settings.max_file_unit_chars, settings.max_run_units, settings.max_run_unit_chars,
        )


class TooLarge(ValueError):
    """A file whose units would exceed a per-file limit; the message names the limit's setting."""


def unit_size(unit: Unit) -> int:
    """Characters a unit holds: its code and context."""
    return len(unit.code) + len(unit.context)

FUNCTION, CLASS, NAMESPACE, PREFIX = 1, 2, 3, 4

# (role, name, node whose body ends the signature, is a method whatever encloses it)
_Desc = tuple[int, str | None, Node, bool]
_Describe = Callable[[Node], _Desc | None]


def _text(node: Node | None) -> str | None:
    """The source text of a node, None for a missing node."""
    if node is None:
        return None
    return node.text.decode("utf-8", "replace") if node.text is not None else None


def _field_text(node: Node, field: str) -> str | None:
    """The source text of a node's field."""
    return _text(node.child_by_field_name(field))


def _describe_python(node: Node) -> _Desc | None:
    """Python function and class definitions."""
    role = CLASS if node.type == "class_definition" else FUNCTION
    return role, _field_text(node, "name"), node, False


_JS_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_JS_CLASSES = frozenset({"class_declaration", "abstract_class_declaration", "class"})


def _js_key(node: Node | None) -> str | None:
    """An object key or class member name without string quotes."""
    text = _text(node)
    return text.strip("'\"`") if text is not None else None


def _describe_js(node: Node) -> _Desc | None:
    """JavaScript and TypeScript functions, named function values, classes, namespaces and named objects."""
    kind = node.type
    if kind in _JS_CLASSES:
        name = _field_text(node, "name")
        parent = node.parent
        if name is None and parent is not None and parent.type == "variable_declarator":
            name = _field_text(parent, "name")
        return CLASS, name, node, False
    if kind in ("internal_module", "module"):
        return NAMESPACE, _js_key(node.child_by_field_name("name")), node, False
    if kind in _JS_FUNCTION_VALUES:
        parent = node.parent
        if parent is not None and parent.type == "export_statement":
            return FUNCTION, "default", node, False
        return None
    if kind == "variable_declarator":
        target, value = node.child_by_field_name("name"), node.child_by_field_name("value")
        if target is None or value is None or target.type != "identifier":
            return None
        name = _text(target)
    elif kind == "pair":
        value, name = node.child_by_field_name("value"), _js_key(node.child_by_field_name("key"))
    elif kind in ("field_definition", "public_field_definition"):
        value = node.child_by_field_name("value")
        name = _js_key(node.child_by_field_name("property") or node.child_by_field_name("name"))
    elif kind == "assignment_expression":
        value, left = node.child_by_field_name("right"), _text(node.child_by_field_name("left"))
        name = left.replace(".prototype.", ".") if left is not None else None
    else:
        if node.child_by_field_name("body") is None:
            return None
        return FUNCTION, _js_key(node.child_by_field_name("name")), node, False
    if value is None:
        return None
    if value.type in _JS_FUNCTION_VALUES:
        return FUNCTION, name, value, False
    if value.type == "object" and kind != "assignment_expression":
        return NAMESPACE, name, value, False
    return None


_JAVA_TYPES = frozenset(
    {
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "annotation_type_declaration",
    }
)


def _describe_java(node: Node) -> _Desc | None:
    """Java types, methods and constructors (methods without a body are declarations only)."""
    if node.type in _JAVA_TYPES:
        return CLASS, _field_text(node, "name"), node, False
    if node.child_by_field_name("body") is None:
        return None
    return FUNCTION, _field_text(node, "name"), node, False


def _go_receiver(node: Node) -> str | None:
    """The receiver type name of a Go method: `(r *Repo[T])` is Repo."""
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return None
    for param in receiver.named_children:
        kind = param.child_by_field_name("type")
        while kind is not None and kind.type in ("pointer_type", "generic_type", "parenthesized_type"):
            kind = kind.child_by_field_name("type") or (
                kind.named_children[0] if kind.named_children else None
            )
        return _text(kind)
    return None


def _describe_go(node: Node) -> _Desc | None:
    """Go functions and methods, methods named after their receiver type."""
    name = _field_text(node, "name")
    if node.type == "method_declaration":
        receiver = _go_receiver(node)
        return FUNCTION, f"{receiver}.{name}" if receiver and name else name, node, True
    return FUNCTION, name, node, False


def _rust_type_name(node: Node | None) -> str | None:
    """The bare name of a Rust type: `Foo<T>`, `&Foo` and `crate::Foo` are Foo."""
    words = (_text(node) or "").split("<", 1)[0].lstrip("&").split()
    return words[-1].rsplit("::", 1)[-1] or None if words else None


def _describe_rust(node: Node) -> _Desc | None:
    """Rust functions, impl blocks (named by their type), traits and inline modules."""
    kind = node.type
    if kind == "impl_item":
        return CLASS, _rust_type_name(node.child_by_field_name("type")), node, False
    if kind == "trait_item":
        return CLASS, _field_text(node, "name"), node, False
    if kind == "mod_item":
        return (
            (NAMESPACE, _field_text(node, "name"), node, False) if node.child_by_field_name("body") else None
        )
    return FUNCTION, _field_text(node, "name"), node, False


def _c_name(node: Node | None) -> str | None:
    """A C/C++ declarator name with `::` scopes turned into dots and template arguments dropped."""
    parts: list[str] = []
    while node is not None and node.type == "qualified_identifier":
        scope = _text(node.child_by_field_name("scope"))
        if scope:
            parts.append(scope.split("<", 1)[0])
        node = node.child_by_field_name("name")
    if node is not None and node.type == "template_function":
        node = node.child_by_field_name("name")
    text = _text(node)
    if text:
        parts.append(" ".join(text.split()))
    return ".".join(parts) or None


def _describe_c(node: Node) -> _Desc | None:
    """C/C++ function definitions, classes, structs and namespaces; `Foo::bar` is the method Foo.bar."""
    kind = node.type
    if kind == "namespace_definition":
        return NAMESPACE, _c_name(node.child_by_field_name("name")), node, False
    if kind != "function_definition":
        if node.child_by_field_name("body") is None:
            return None
        return CLASS, _c_name(node.child_by_field_name("name")), node, False
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        inner = declarator.child_by_field_name("declarator")
        if inner is None and declarator.named_child_count:
            inner = declarator.named_children[-1]
        declarator = inner
    if declarator is None:
        return None
    name = _c_name(declarator.child_by_field_name("declarator"))
    return FUNCTION, name, node, name is not None and "." in name


def _describe_ruby(node: Node) -> _Desc | None:
    """Ruby methods, singleton methods (`def self.x`), classes and modules."""
    kind = node.type
    name = _field_text(node, "name")
    if kind in ("class", "module"):
        return CLASS, name.replace("::", ".") if name else None, node, False
    if kind == "singleton_method":
        target = _field_text(node, "object")
        if target and target != "self" and name:
            name = f"{target}.{name}"
    return FUNCTION, name, node, False


@dataclass(frozen=True)
class _Spec:
    """How to find the definitions of one language in its syntax tree."""

    describe: _Describe
    definitions: frozenset[str]
    prefixes: frozenset[str]  # comments and attributes that belong to the definition below them
    wrappers: frozenset[str]  # parents whose lines a definition's unit takes (decorators, export, template)
    descend: frozenset[str] | None  # node types whose children may hold definitions; None: all


def _types(text: str) -> frozenset[str]:
    """A set of node type names from a space-separated string."""
    return frozenset(text.split())


_JS = _Spec(
    _describe_js,
    _types(
        "function_declaration generator_function_declaration method_definition class_declaration"
        " abstract_class_declaration class variable_declarator pair field_definition public_field_definition"
        " assignment_expression arrow_function function_expression generator_function internal_module module"
    ),
    _types("comment decorator"),
    _types("export_statement lexical_declaration variable_declaration expression_statement"),
    None,
)
_C_DESCEND = "translation_unit preproc_if preproc_ifdef preproc_else preproc_elif preproc_elifdef linkage_specification declaration_list ERROR"

_SPECS: dict[str, _Spec] = {
    "python": _Spec(
        _describe_python,
        _types("function_definition class_definition"),
        _types("comment"),
        _types("decorated_definition"),
        _types(
            "module block class_definition function_definition decorated_definition if_statement elif_clause"
            " else_clause try_statement except_clause except_group_clause finally_clause with_statement"
            " for_statement while_statement match_statement case_clause ERROR"
        ),
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "java": _Spec(
        _describe_java,
        _types(
            "class_declaration interface_declaration enum_declaration record_declaration"
            " annotation_type_declaration method_declaration constructor_declaration compact_constructor_declaration"
        ),
        _types("line_comment block_comment"),
        frozenset(),
        _types(
            "program class_declaration class_body interface_declaration interface_body enum_declaration"
            " enum_body enum_body_declarations record_declaration annotation_type_declaration"
            " annotation_type_body ERROR"
        ),
    ),
    "go": _Spec(
        _describe_go,
        _types("function_declaration method_declaration"),
        _types("comment"),
        frozenset(),
        _types("source_file ERROR"),
    ),
    "rust": _Spec(
        _describe_rust,
        _types("function_item impl_item trait_item mod_item"),
        _types("line_comment block_comment attribute_item"),
        frozenset(),
        _types("source_file declaration_list mod_item impl_item trait_item function_item block ERROR"),
    ),
    "c": _Spec(
        _describe_c,
        _types("function_definition"),
        _types("comment"),
        frozenset(),
        _types(_C_DESCEND),
    ),
    "cpp": _Spec(
        _describe_c,
        _types("function_definition class_specifier struct_specifier union_specifier namespace_definition"),
        _types("comment"),
        _types("template_declaration"),
        _types(
            _C_DESCEND + " namespace_definition template_declaration class_specifier struct_specifier"
            " union_specifier field_declaration_list declaration field_declaration type_definition"
        ),
    ),
    "ruby": _Spec(
        _describe_ruby,
        _types("method singleton_method class module"),
        _types("comment"),
        frozenset(),
        _types(
            "program module class singleton_class body_statement call do_block block block_body begin"
            " if unless else ERROR"
        ),
    ),
}


class _Grammar:
    """A language's parser and node type ids, created once per process."""

    def __init__(self, language: str) -> None:
        spec = _SPECS[language]
        lang = grammar(language)
        self.spec = spec
        self.parser = Parser(lang)
        self.lock = threading.Lock()  # a Parser must not parse two files at once
        ids: dict[str, list[int]] = {}
        for kind_id in range(lang.node_kind_count):
            ids.setdefault(lang.node_kind_for_id(kind_id) or "", []).append(kind_id)
        self.roles: dict[int, int] = {}
        for role, names in ((FUNCTION, spec.definitions), (PREFIX, spec.prefixes)):
            for name in names:
                self.roles.update(dict.fromkeys(ids.get(name, ()), role))
        self.wrappers = spec.wrappers
        self.descend = (
            None if spec.descend is None else frozenset(i for name in spec.descend for i in ids.get(name, ()))
        )

    def parse(self, data: bytes) -> Tree:
        """Parse utf-8 source bytes."""
        with self.lock:
            return self.parser.parse(data)


@functools.cache
def _grammar(language: str) -> _Grammar:
    """The cached grammar of a parsed language."""
    return _Grammar(language)


@dataclass
class _Scope:
    """An enclosing definition while walking the tree."""

    end_byte: int
    role: int
    qualname: str
    start_row: int
    end_row: int
    header: str


@dataclass
class _Def:
    """A function found in the tree, before it becomes one or more units."""

    name: str
    kind: str
    start_row: int
    end_row: int
    signature: str
    context: str


def _end_row(node: Node) -> int:
    """The last row holding text of a node (a node may end at column 0 after its newline)."""
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point[0] else row


def _indent(line: str) -> int:
    """Bytes of leading spaces and tabs."""
    return len(line) - len(line.lstrip(" \t"))


def _header(lines: list[str], node: Node, end_row: int, data: bytes, max_chars: int) -> str:
    """A definition's header rows: its first row to where its body starts (`def f():` / `void f() {`).

    Rows longer than ``max_chars`` in all (minified code, one-line nests) give way to the exact text from the
    definition's start to its body's, cut at ``max_chars``.
    """
    row = node.start_point[0]
    last = row
    body = node.child_by_field_name("body")
    if body is not None:
        body_row, body_col = body.start_point
        last = body_row if body_col > _indent(lines[body_row]) else body_row - 1
    last = min(max(last, row), end_row)
    while last > row and lines[last].lstrip().startswith(_COMMENT_STARTS):
        last -= 1  # comments between a class line and its body (Python, Ruby) are not header
    if sum(len(lines[r]) + 1 for r in range(row, last + 1)) <= max_chars + 1:
        return "\n".join(lines[row : last + 1])
    end = body.start_byte if body is not None else node.end_byte
    return data[node.start_byte : min(end, node.start_byte + 4 * max_chars)].decode("utf-8", "replace")[:max_chars]


def _context(stack: list[_Scope], max_chars: int) -> str:
    """The headers of the enclosing scopes, outermost first, as many innermost ones as fit in ``max_chars``."""
    kept: list[str] = []
    size = -1
    for scope in reversed(stack):
        if scope.header:
            size += len(scope.header) + 1
            if size > max_chars:
                if not kept:
                    kept.append(scope.header[:max_chars])
                break
            kept.append(scope.header)
    return "\n".join(reversed(kept))


def _qualify(name: str) -> str:
    """A qualified name of at most MAX_NAME_CHARS characters."""
    return name if len(name) <= MAX_NAME_CHARS else "…" + name[1 - MAX_NAME_CHARS :]


_COMMENT_STARTS = ("#", "//", "/*", "*")


def _alone_on_line(lines: list[str], row: int, end_column: int | None) -> bool:
    """Whether nothing but whitespace follows a prefix node that ends at (row, end_column)."""
    if end_column is None:
        return True
    line = lines[row]
    rest = line[end_column:] if line.isascii() else line.encode("utf-8", "replace")[end_column:]
    return not rest.strip()


def _find_definitions(tree: Tree, g: _Grammar, lines: list[str], data: bytes, limits: Limits) -> list[_Def]:
    """Walk the tree once, descending only where definitions can be, and collect the functions."""
    describe, roles, descend, wrappers = g.spec.describe, g.roles, g.descend, g.wrappers
    header_chars, context_chars, most = limits.header_chars, limits.context_chars, limits.file_units
    prefixes: dict[int, tuple[int, int, int | None]] = {}  # end row -> start row, start column, end column
    stack: list[_Scope] = []
    found: list[_Def] = []
    last_end = -1  # last row of the latest function that is no longer open
    cursor = tree.walk()
    while True:
        node = cursor.node
        assert node is not None  # a cursor made by tree.walk() always stands on a node
        kind_id = node.kind_id
        role = roles.get(kind_id)
        if role == PREFIX:
            row, column = node.start_point
            end, end_column = node.end_point
            if end_column == 0 and end > row:
                prefixes.setdefault(end - 1, (row, column, None))
            else:
                prefixes.setdefault(end, (row, column, end_column))
        elif role is not None:
            desc = describe(node)
            if desc is not None:
                role, name, owner, forced_method = desc
                start_byte = node.start_byte
                while stack and stack[-1].end_byte <= start_byte:
                    closed = stack.pop()
                    if closed.role == FUNCTION:
                        last_end = max(last_end, closed.end_row)
                parent = stack[-1] if stack else None
                end_row = _end_row(node)
                if name:
                    if parent is None or not parent.qualname:
                        qualname = _qualify(name)
                    elif parent.role == FUNCTION:
                        qualname = _qualify(f"{parent.qualname}.<locals>.{name}")
                    else:
                        qualname = _qualify(f"{parent.qualname}.{name}")
                else:
                    qualname = parent.qualname if parent is not None else ""
                header = _header(lines, owner, end_row, data, header_chars)
                if role == FUNCTION and name:
                    outer = node
                    while (wrapper := outer.parent) is not None and wrapper.type in wrappers:
                        outer = wrapper
                    start_row, column = outer.start_point
                    floor = max(last_end, parent.start_row if parent is not None else -1)
                    while (prefix := prefixes.get(start_row - 1)) is not None:
                        row, prefix_column, prefix_end = prefix
                        if row <= floor or prefix_column != column or prefix_column != _indent(lines[row]):
                            break
                        if not _alone_on_line(lines, start_row - 1, prefix_end):
                            break
                        start_row = row
                    if len(found) == most:
                        raise TooLarge(f"more than {most} units (RAGCODE_MAX_FILE_UNITS)")
                    enclosing = next((s.role for s in reversed(stack) if s.role != NAMESPACE), None)
                    found.append(
                        _Def(
                            qualname,
                            "method" if forced_method or enclosing == CLASS else "function",
                            start_row,
                            end_row,
                            header,
                            _context(stack, context_chars),
                        )
                    )
                if role != FUNCTION or name:
                    stack.append(_Scope(node.end_byte, role, qualname, node.start_point[0], end_row, header))
        if (descend is None or kind_id in descend) and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return found


def _split(
    path: str,
    language: str,
    name: str,
    rows: list[int],
    lines: list[str],
    signature: str,
    part_context: str,
    max_lines: int,
) -> list[Unit]:
    """Even parts of at most max_lines rows, those after the first led by the signature and `...`."""
    count = len(rows)
    planned = -(-count // max_lines)
    first_line = signature.split("\n", 1)[0]
    filler = f"{first_line[: _indent(first_line)]}    ...\n"
    parts: list[Unit] = []
    start = 0
    while start < count:
        left = planned - len(parts)
        size = -(-(count - start) // left)  # parts of even size
        end = start + size
        if end < count:
            # cut at a blank line instead, as long as the rest still fits in the parts left
            end = next(
                (
                    j
                    for j in range(end - 1, start + size // 2, -1)
                    if not lines[rows[j]].strip() and count - j - 1 <= (left - 1) * max_lines
                ),
                end,
            )
        chunk = "\n".join(lines[r] for r in rows[start:end])
        code = chunk if not parts or not signature else f"{signature}\n{filler}{chunk}"
        parts.append(
            Unit(
                path,
                language,
                "part",
                f"{name}#{len(parts) + 1}",
                rows[start] + 1,
                rows[end - 1] + 1,
                code,
                part_context,
            )
        )
        start = end
        while start < count and not lines[rows[start]].strip():
            start += 1
    return parts


def _packed(rows: Iterable[int], lines: list[str], max_chars: int, max_lines: int) -> list[tuple[int, int, str]]:
    """Consecutive rows packed into texts of at most max_chars characters and max_lines rows.

    Each is (first row, last row, text). Only a row longer than a whole text is cut: its first piece fills
    the current text and the rest follow, so line breaks are only ever where the source has them.
    """
    packs: list[tuple[int, int, str]] = []
    texts: list[str] = []
    first = last = size = 0
    for row in rows:
        rest = lines[row]
        while True:
            if len(texts) == max_lines:
                packs.append((first, last, "\n".join(texts)))
                texts = []
            if not texts:
                first, size = row, -1
            room = max_chars - size - 1
            if len(rest) <= room:
                texts.append(rest)
                size += len(rest) + 1
                last = row
                break
            if len(rest) > max_chars and room > 0:
                texts.append(rest[:room])
                rest = rest[room:]
                last = row
            packs.append((first, last, "\n".join(texts)))
            texts = []
    if texts:
        packs.append((first, last, "\n".join(texts)))
    return packs


def _char_parts(
    path: str, language: str, name: str, rows: Iterable[int], lines: list[str], context: str, max_chars: int,
    max_lines: int,
) -> list[Unit]:
    """Parts of at most max_chars characters and max_lines rows, for units whose lines are very long."""
    packs = [pack for pack in _packed(rows, lines, max_chars, max_lines) if pack[2].strip()]
    return [
        Unit(path, language, "part", f"{name}#{number}", first + 1, last + 1, text, context)
        for number, (first, last, text) in enumerate(packs, 1)
    ]


def _part_context(context: str, signature: str, max_chars: int) -> str:
    """The context of a function's parts: its own context and signature, the outermost lines dropped to fit."""
    joined = f"{context}\n{signature}" if context and signature else context or signature
    if len(joined) <= max_chars:
        return joined
    tail = joined[-max_chars:]
    return tail.split("\n", 1)[1] if "\n" in tail else tail


def _function_units(path: str, language: str, d: _Def, lines: list[str], max_lines: int, limits: Limits) -> list[Unit]:
    """A function's unit, or its parts when it is longer than max_lines rows or the unit character limit."""
    rows = range(d.start_row, d.end_row + 1)
    max_chars = limits.unit_chars
    if len(rows) <= max_lines:
        code = "\n".join(lines[d.start_row : d.end_row + 1])
        if len(code) <= max_chars:
            return [Unit(path, language, d.kind, d.name, d.start_row + 1, d.end_row + 1, code, d.context)]
    context = _part_context(d.context, d.signature, limits.context_chars)
    if len(rows) > max_lines:
        parts = _split(path, language, d.name, list(rows), lines, d.signature, context, max_lines)
        if all(len(part.code) <= max_chars for part in parts):
            return parts
    return _char_parts(path, language, d.name, rows, lines, context, max_chars, max_lines)


def _module_segments(lines: list[str], defs: list[_Def]) -> list[tuple[int, int]]:
    """First and last rows of the runs of rows outside every function, without blank rows at their ends."""
    gaps: list[tuple[int, int]] = []
    row = 0
    for d in defs:
        if d.start_row > row:
            gaps.append((row, d.start_row - 1))
        row = max(row, d.end_row + 1)
    gaps.append((row, len(lines) - 1))
    segments: list[tuple[int, int]] = []
    for first, last in gaps:
        while first <= last and not lines[first].strip():
            first += 1
        while last >= first and not lines[last].strip():
            last -= 1
        if first <= last:
            segments.append((first, last))
    return segments


def _module_units(
    path: str, language: str, lines: list[str], defs: list[_Def], max_lines: int, max_chars: int
) -> list[Unit]:
    """The module-level unit (or its parts): every line outside functions, one blank line where they were."""
    segments = _module_segments(lines, defs)
    if not segments:
        return []
    if sum(last - first + 1 for first, last in segments) > max_lines:
        rows = [row for first, last in segments for row in range(first, last + 1)]
        parts = _split(path, language, MODULE, rows, lines, "", "", max_lines)
        if all(len(part.code) <= max_chars for part in parts):
            return parts
    else:
        code = "\n\n".join("\n".join(lines[first : last + 1]) for first, last in segments)
        if len(code) <= max_chars:
            return [Unit(path, language, "module", MODULE, segments[0][0] + 1, segments[-1][1] + 1, code)]
        rows = [row for first, last in segments for row in range(first, last + 1)]
    return _char_parts(path, language, MODULE, rows, lines, "", max_chars, max_lines)


class _Budget:
    """A file's units and characters so far; past a per-file limit the file is refused."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.units = 0
        self.chars = 0

    def take(self, units: list[Unit]) -> list[Unit]:
        """``units``, counted; raises TooLarge past a limit."""
        self.units += len(units)
        self.chars += sum(map(unit_size, units))
        if self.units > self.limits.file_units:
            raise TooLarge(f"more than {self.limits.file_units} units (RAGCODE_MAX_FILE_UNITS)")
        if self.chars > self.limits.file_chars:
            raise TooLarge(f"its units hold more than {self.limits.file_chars} characters (RAGCODE_MAX_FILE_UNIT_CHARS)")
        return units


def _windows(path: str, language: str, lines: list[str], size: int, max_chars: int, budget: _Budget) -> list[Unit]:
    """Fixed windows of lines, those with only whitespace left out; a window of very long lines is cut by characters."""
    units: list[Unit] = []
    for start in range(0, len(lines), size):
        window = lines[start : start + size]
        code = "\n".join(window)
        if not code.strip():
            continue
        end = start + len(window)
        if len(code) <= max_chars:
            units.extend(
                budget.take([Unit(path, language, "window", f"<lines {start + 1}-{end}>", start + 1, end, code)])
            )
            continue
        for first, last, text in _packed(range(start, end), lines, max_chars, size):
            if text.strip():
                name = f"<lines {first + 1}-{last + 1}>"
                units.extend(budget.take([Unit(path, language, "window", name, first + 1, last + 1, text)]))
    return units


def _with_ordinals(units: list[Unit]) -> list[Unit]:
    """Units in file order, numbering those that share a name 0, 1, 2..."""
    units.sort(key=lambda u: (u.start_line, -u.end_line))
    seen: dict[str, int] = {}
    numbered: list[Unit] = []
    for unit in units:
        ordinal = seen.get(unit.name, 0)
        seen[unit.name] = ordinal + 1
        numbered.append(unit if ordinal == 0 else _replace_ordinal(unit, ordinal))
    return numbered


def _replace_ordinal(unit: Unit, ordinal: int) -> Unit:
    """A copy of a unit with another ordinal."""
    return dataclasses.replace(unit, ordinal=ordinal)


# A Python function always starts a line with `def` (or `async def`): a file without one is all
# module level, and skipping its parse is a large saving on data tables and __init__ files.
_PYTHON_DEF = re.compile(r"^[ \t\f]*(?:async[ \t\f]+)?def[ \t\f\\]", re.MULTILINE)


def _chunk_parsed(
    path: str, language: str, source: str, lines: list[str], max_lines: int, limits: Limits, budget: _Budget
) -> list[Unit]:
    """Units of a file in a parsed language: its functions and the module-level rest, with what each calls."""
    defs: list[_Def] = []
    tree: Tree | None = None
    if language != "python" or _PYTHON_DEF.search(source):
        g = _grammar(language)
        data = source.encode("utf-8", "replace")
        tree = g.parse(data)
        defs = _find_definitions(tree, g, lines, data, limits)
    units = budget.take(_module_units(path, language, lines, defs, max_lines, limits.unit_chars))
    for d in defs:
        units.extend(budget.take(_function_units(path, language, d, lines, max_lines, limits)))
    return units if tree is None else with_calls(language, tree, path, units)


DEFAULT_LIMITS = Limits()


def chunk_file(path: str, source: str, max_unit_lines: int = 200, limits: Limits = DEFAULT_LIMITS) -> list[Unit]:
    """Units of decoded source: functions, methods and the module-level rest, or else line windows.

    Raises TooLarge when the file's units would exceed ``limits.file_units`` or ``limits.file_chars``.
    """
    if not source or source.isspace():
        return []
    if "\r" in source:
        source = source.replace("\r\n", "\n")
    max_lines = max(1, max_unit_lines)
    lines = source.split("\n")
    language = language_for(path) or TEXT
    if language in _SPECS:
        try:
            return _with_ordinals(_chunk_parsed(path, language, source, lines, max_lines, limits, _Budget(limits)))
        except TooLarge:
            raise
        except Exception:  # a grammar surprise must not stop indexing: the file still gets windows
            logger.exception("chunking %s as %s failed, indexing it by line windows", path, language)
    if source.endswith("\n"):
        lines.pop()
    window = min(WINDOW_LINES, max_lines)
    return _with_ordinals(_windows(path, language, lines, window, limits.unit_chars, _Budget(limits)))
