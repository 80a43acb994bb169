"""Review-comment suggestions: does a request ask for a change, which lines it is about, and the ```suggestion
block that replaces exactly those lines (built here, outside the sanitizer, from the model's code)."""

from __future__ import annotations

import re

from bot.llm.base import Focus
from bot.llm.prompts import take_block
from bot.markdown import fence

MAX_FOCUS_LINES = 200  # commented lines a suggestion may replace (GitHub's own multi-line comments are shorter)
CONTEXT_LINES = 15  # lines of the file shown around them
MAX_SUGGESTION_CHARS = 30_000  # a longer replacement is not offered as a suggestion
MAX_SUGGESTION_LINES = 600
_LINE_BREAK = re.compile(r"\r?\n")
# Words that ask for a change to code, in English and Korean (stems, so 바꿔/바꾸고/바꿔서 all match).
_CHANGE = re.compile(
    r"\b(?:change|fix|rename|refactor|rewrite|replace|make|convert|add|remove|delete|drop|use|simplify|extract"
    r"|inline|move|update|handle|optimi[sz]e|clean|format|swap|turn|avoid|apply|implement|wrap|guard|validate"
    r"|check|return|raise|catch|log|split|merge|reorder|sort|type|annotate|document)\b"
    r"|바꾸|바꿔|고쳐|고치|수정|변경|추가|삭제|제거|없애|빼|리팩|개선|만들|적용|정리|처리|넣어|넣고|줄여|늘려|옮겨|나눠|합쳐"
    r"|감싸|검사|검증|써\s?줘|작성",
    re.I,
)
_QUESTION = re.compile(r"^\W*(?:what|why|where|when|who|which|explain|describe|설명|왜|무엇|뭐|뭘|어디|언제)", re.I)


def asks_for_change(request: str) -> bool:
    """True when the request asks to change code; a question about it ("what does this return?") gets an
    answer, not a suggestion."""
    return _CHANGE.search(request) is not None and _QUESTION.match(request) is None


def file_lines(text: str) -> list[str]:
    """The lines of a file as GitHub numbers them (``\\n`` or ``\\r\\n`` ends a line; nothing else does)."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def focus_of(text: str, path: str, start: int, end: int, language: str, change: bool) -> Focus | None:
    """Lines ``start..end`` (1-based, inclusive) of a file with some context; None when they are not in the file
    or are too many to quote."""
    lines = file_lines(text)
    if not 1 <= start <= end <= len(lines) or end - start + 1 > MAX_FOCUS_LINES:
        return None
    before = lines[max(0, start - 1 - CONTEXT_LINES): start - 1]
    after = lines[end: end + CONTEXT_LINES]
    return Focus(path, start, end, "\n".join(lines[start - 1: end]), "\n".join(before), "\n".join(after), language,
                 change)


def take_suggestion(markdown: str, focus: Focus) -> tuple[str | None, str]:
    """The replacement the model wrote for the commented lines (its ```suggestion block) and the rest of its
    answer; None when it wrote none, an oversized one, or the lines unchanged."""
    replacement, rest = take_block(markdown, "suggestion")
    if replacement is None:
        return None, markdown
    if (len(replacement) > MAX_SUGGESTION_CHARS or len(file_lines(replacement)) > MAX_SUGGESTION_LINES
            or replacement.rstrip("\n") == focus.lines.rstrip("\n")):
        return None, rest
    return replacement, rest


def suggestion_block(replacement: str) -> str:
    """A GitHub suggestion replacing the commented lines with ``replacement``; its fence is longer than any run of
    backticks inside, so nothing in it can close it. An empty replacement deletes the lines."""
    if not replacement.strip("\n"):
        return "```suggestion\n```"
    return fence(replacement, "suggestion")
