"""Grounded replies: every file path and function a generated answer presents as existing must be in the index.

What counts as presented as existing: in prose, file paths (with a ``/`` or a known extension) and ``name()``
calls; in inline code, paths, ``name(...)``, ``Class.method`` and names said to be functions ("the ``x``
function", "calls ``x``", "``x`` 함수"); in code blocks, the modules of the repository that a Python
``from package.module import name`` line takes names from, and those names. A call on a variable
(``ledger.record(5)``) is checked by its last name. Names the answer's own code defines, builtins and
standard-library modules are not the repository's to have. Each name the index lacks is marked where the prose
first names it (never inside code the user will copy) and listed in a note after the answer.
"""

from __future__ import annotations

import builtins
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bot.indexer.languages import language_for
from bot.markdown import inline_code
from bot.metrics import GROUNDING_CHECKED, UNGROUNDED

MAX_CHECKED = 40  # paths and names each checked per answer at most (the first ones)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_IDENT = r"[A-Za-z_$][\w$]*"
_CALL = re.compile(rf"^((?:{_IDENT}\.)*{_IDENT})\s*\(.*\)?$", re.S)
_DOTTED = re.compile(rf"^[A-Z][\w$]*(?:\.{_IDENT})+$")
_PLAIN = re.compile(rf"^{_IDENT}$")
_PROSE_CALL = re.compile(rf"(?<![\w.$])((?:{_IDENT}\.)*{_IDENT})\(\)", re.A)
_PROSE_PATH = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)+[\w.-]+\.[A-Za-z0-9]{1,8}|[\w-]+\.[A-Za-z0-9]{1,8})(?![\w/])",
                         re.A)
_SAID_FUNCTION = re.compile(r"^\s*(?:함수|메서드|메소드|function\b|method\b)|^(?:을|를)\s*호출", re.I)
_SAYS_CALL = re.compile(r"(?:\bcalls?|\bcalling|\bthe function|\bthe method|\binvokes?)\s*$", re.I)
_PY_IMPORT = re.compile(rf"^\s*from\s+((?:{_IDENT}\.)*{_IDENT})\s+import\s+\(?([\w\s,]+?)\)?\s*(?:#.*)?$")
_DEFINES = re.compile(rf"(?:\bdef|\bclass|\bfunction|\bfunc|\bfn|\bconst|\blet|\bvar|\binterface|\btype)\s+({_IDENT})"
                      rf"|^\s*({_IDENT})\s*=|^\s*(?:async\s+)?({_IDENT})\s*\([^)]*\)\s*\{{", re.M)
_RECEIVERS = frozenset({"self", "this", "cls", "super"})
_KNOWN_ROOTS = frozenset(dir(builtins)) | frozenset(sys.stdlib_module_names) | frozenset(
    "console JSON Math Object Array Promise String Number Boolean Date RegExp Map Set Error window document "
    "process require module exports fetch setTimeout setInterval clearTimeout parseInt parseFloat Symbol "
    "fmt errors strings strconv http log context sync println printf std Vec Box Option Result Some Ok Err "
    "System List Arrays Collections Optional Objects".split())
_NOTE = {"ko": "이 저장소에서 찾지 못한 이름: {names}. 실제로 있는지 확인하고 쓰세요.",
         "en": "Not found in this repository: {names}. Check them before relying on them."}
_MARK = {"ko": "*(이 저장소에 없음)*", "en": "*(not found in this repository)*"}

Lookup = Callable[[list[str], list[str]], tuple[set[str], set[str]]]


@dataclass
class Mentions:
    """What an answer presents as existing, in order of appearance (each once)."""

    paths: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    modules: list[tuple[str, list[str]]] = field(default_factory=list)  # Python imports in its code
    defined: set[str] = field(default_factory=set)  # names its own code defines


@dataclass
class Grounding:
    """The answer with unknown names marked, and what was checked."""

    markdown: str
    unknown: list[str]
    checked: int


def _segments(markdown: str) -> Iterator[tuple[bool, str]]:
    """The answer line by line, each with whether it is code (in a fence, or indented as code)."""
    opener: str | None = None
    for line in markdown.splitlines(keepends=True):
        match = _FENCE.match(line)
        if opener is None and match:
            opener = match.group(1)
            yield True, line
        elif opener is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {opener[0]} and len(stripped) >= len(opener):
                opener = None
            yield True, line
        else:
            yield line.startswith(("    ", "\t")) and bool(line.strip()), line


def _path_like(text: str) -> bool:
    """A file (``a/b.py``, ``b.py``) or folder (``a/b/``) path, not a URL, a version or a sentence."""
    if not re.fullmatch(r"[\w.\-/]{1,300}", text, re.A) or text.startswith(("-", "/")) or "//" in text:
        return False
    if text.endswith("/"):
        return len(text) > 1
    name = text.rsplit("/", 1)[-1]
    if "." not in name.strip(".") or re.fullmatch(r"[\d.]+", name):
        return False
    return "/" in text or language_for(name) is not None


def _function(content: str, before: str, after: str, defined: set[str]) -> str | None:
    """The name to look up for an inline code span that names a function, or None."""
    call = _CALL.match(content)
    if call:
        name = call.group(1)
    elif _DOTTED.match(content) or _PLAIN.match(content) and (_SAID_FUNCTION.search(after) or
                                                              _SAYS_CALL.search(before)):
        name = content
    else:
        return None
    return _checked(name, defined)


def _checked(name: str, defined: set[str]) -> str | None:
    """``name`` as looked up: ``Class.method`` whole, a call on a variable or module by its last name; None when it
    is not the repository's to have (a builtin, the standard library, a name the answer itself defines)."""
    parts = [part for part in name.split(".") if part]
    if parts and parts[0] in _RECEIVERS:
        parts = parts[1:]
    if not parts or parts[0] in _KNOWN_ROOTS or parts[-1] in defined or len(parts[-1]) < 2:
        return None
    return ".".join(parts) if parts[0][:1].isupper() else parts[-1]


def _scan(text: str, defined: set[str]) -> Iterator[tuple[int, str, str]]:
    """(end offset, key, kind) of each mention in one line of prose, in order; kind is "path" or "function"."""
    position = 0
    for span in _INLINE.finditer(text):
        yield from _scan_plain(text, position, span.start(), defined)
        content = span.group(2).strip()
        if _path_like(content):
            yield span.end(), content, "path"
        else:
            key = _function(content, text[max(0, span.start() - 20):span.start()],
                            text[span.end():span.end() + 12], defined)
            if key:
                yield span.end(), key, "function"
        position = span.end()
    yield from _scan_plain(text, position, len(text), defined)


def _scan_plain(text: str, start: int, end: int, defined: set[str]) -> Iterator[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    for match in _PROSE_PATH.finditer(text, start, end):
        if _path_like(match.group(1)):
            found.append((match.end(), match.group(1), "path"))
    for match in _PROSE_CALL.finditer(text, start, end):
        key = _checked(match.group(1), defined)
        if key:
            found.append((match.end(), key, "function"))
    yield from sorted(found)


def mentions(markdown: str) -> Mentions:
    """Paths and function names the answer presents as existing (see the module's docstring)."""
    found = Mentions()
    code = "".join(text for is_code, text in _segments(markdown) if is_code)
    found.defined = {next(group for group in match.groups() if group) for match in _DEFINES.finditer(code)}
    for line in code.splitlines():
        imported = _PY_IMPORT.match(line)
        if imported and imported.group(1).split(".")[0] not in _KNOWN_ROOTS:
            taken = [name.strip() for name in imported.group(2).split(",") if name.strip()]
            found.modules.append((imported.group(1), [name for name in taken if name not in found.defined]))
    paths: dict[str, None] = {}
    names: dict[str, None] = {}
    for is_code, text in _segments(markdown):
        if not is_code:
            for _, key, kind in _scan(text, found.defined):
                (paths if kind == "path" else names)[key] = None
    found.paths = list(paths)[:MAX_CHECKED]
    found.names = list(names)[:MAX_CHECKED]
    return found


def _module_files(module: str) -> tuple[str, str]:
    """Where a Python module of the repository may be: ``pkg/module.py`` or the folder ``pkg/module/``."""
    stem = module.replace(".", "/")
    return f"{stem}.py", f"{stem}/"


def ground(markdown: str, lookup: Lookup, lang: str) -> Grounding:
    """``markdown`` with every path and name ``lookup(paths, names)`` does not confirm marked in its prose and
    listed in a note; ``lookup`` answers (the paths it found, the names it found)."""
    found = mentions(markdown)
    roots = {module.split(".")[0] for module, _ in found.modules}
    known_roots, _ = lookup([path for root in sorted(roots) for path in _module_files(root)], []) if roots else (
        set(), set())
    ours = [(module, names) for module, names in found.modules[:MAX_CHECKED]
            if set(_module_files(module.split(".")[0])) & known_roots]
    module_paths = [path for module, _ in ours for path in _module_files(module)]
    imported = [name for _, names in ours for name in names if name not in found.names]
    known_paths, known_names = lookup(found.paths + module_paths, found.names + imported[:MAX_CHECKED])
    unknown = [path for path in found.paths if path not in known_paths]
    unknown += [name for name in found.names if name not in known_names]
    missing_modules = [module for module, _ in ours if not set(_module_files(module)) & known_paths]
    unknown_imports = [name for name in dict.fromkeys(imported[:MAX_CHECKED]) if name not in known_names]
    checked = len(found.paths) + len(ours) + len(found.names) + len(set(imported[:MAX_CHECKED]))
    GROUNDING_CHECKED.labels(kind="path").inc(len(found.paths) + len(ours))
    GROUNDING_CHECKED.labels(kind="function").inc(checked - len(found.paths) - len(ours))
    UNGROUNDED.labels(kind="path").inc(sum(path in unknown for path in found.paths) + len(missing_modules))
    UNGROUNDED.labels(kind="function").inc(sum(name in unknown for name in found.names) + len(unknown_imports))
    shown = list(dict.fromkeys([*unknown, *missing_modules, *unknown_imports]))
    if not shown:
        return Grounding(markdown, [], checked)
    marked = _mark(markdown, set(unknown), found.defined, lang).rstrip()
    opener = _open_fence(marked)
    if opener:  # the note goes after the answer's code, never into it
        marked += f"\n{opener}"
    note = _NOTE["en" if lang == "en" else "ko"].format(names=", ".join(inline_code(name) for name in shown))
    return Grounding(f"{marked}\n\n> {note}\n", shown, checked)


def _open_fence(markdown: str) -> str | None:
    """The fence of a code block left open at the end of ``markdown``, or None."""
    opener: str | None = None
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if opener is None and match:
            opener = match.group(1)
        elif opener is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {opener[0]} and len(stripped) >= len(opener):
                opener = None
    return opener


def _mark(markdown: str, unknown: set[str], defined: set[str], lang: str) -> str:
    """The first prose mention of each unknown key followed by the mark; code is left as it is."""
    mark = f" {_MARK['en' if lang == 'en' else 'ko']}"
    done: set[str] = set()
    out: list[str] = []
    for is_code, text in _segments(markdown):
        if not is_code:
            ends = []
            for end, key, _ in _scan(text, defined):
                if key in unknown and key not in done:
                    done.add(key)
                    ends.append(end)
            for end in reversed(ends):
                # emphasis only closes before a space or punctuation (CommonMark): "`x` *(…)*는" would not
                glue = " " if end < len(text) and (text[end].isalnum() or text[end] == "_") else ""
                text = text[:end] + mark + glue + text[end:]
        out.append(text)
    return "".join(out)
