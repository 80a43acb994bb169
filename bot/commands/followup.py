"""Follow-ups: the hidden marker each reply carries, the earlier turns of a thread, their token budget, and the
retrieval query a follow-up searches with.

A reply ends with ``<!-- ragcode:v1 {...} -->``: the repository id, the thread, the command it answered, the
request, the commit and the functions used. Replies are public, so the marker holds nothing that is not
already in the thread. A comment counts as an earlier reply only when the App's bot user wrote it and its
marker (the last thing in it) names this repository and this thread; anyone else's comment with a marker is
just a comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from bot.commands.parse import parse_command
from bot.commands.retrieve import order_tests
from bot.documents import Hit
from bot.llm.base import Conversation, Turn
from bot.llm.prompts import extract_code_blocks, turn_text
from bot.llm.tokens import estimate_tokens

MAX_MARKER_CHARS = 6_000  # of the marker's JSON; a longer one is not read
MAX_MARKER_REQUEST_CHARS = 300
MAX_MARKER_REFERENCES = 8
MAX_MARKER_PATH_CHARS = 200
MAX_MARKER_NAME_CHARS = 120
MAX_TURNS = 20  # earlier turns considered at most, newest first
MAX_TURN_BLOCKS = 5  # code blocks of one earlier answer
MAX_BODY_CHARS = 70_000  # of a comment read from a thread (GitHub allows 65,536)
MAX_QUERY_CHARS = 2_000  # of a follow-up's retrieval query
_MARKER = re.compile(r"<!-- ragcode:v1 (\{[^\n]*\}) -->\s*\Z")
_SHA = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class Comment:
    """A comment of a thread as GitHub lists it: id, text and author."""

    id: int
    body: str
    login: str
    bot: bool  # the author's type is Bot


@dataclass(frozen=True)
class Marker:
    """What an earlier reply says about itself."""

    repo_id: int
    thread: str
    command: int | None  # the id of the comment it answered (None: an issue's body)
    request: str
    commit: str
    references: tuple[tuple[str, int, int, str], ...]


def make_marker(repo_id: int, thread: str, command: int | None, request: str, commit: str,
                hits: Sequence[Hit]) -> str:
    """The hidden marker for a reply: bounded, and unable to end the HTML comment it sits in."""
    references = [[_cut(hit.document.path, MAX_MARKER_PATH_CHARS), hit.document.start_line, hit.document.end_line,
                   _cut(hit.document.name, MAX_MARKER_NAME_CHARS)] for hit in hits[:MAX_MARKER_REFERENCES]]
    request = _cut(" ".join(request.split()), MAX_MARKER_REQUEST_CHARS)
    while True:
        data = {"repo": repo_id, "thread": thread, "q": command, "t": request, "c": commit, "r": references}
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
        if len(text) <= MAX_MARKER_CHARS or not (references or request):
            break
        if references:
            references.pop()
        else:
            request = request[: len(request) // 2]
    # "<", ">" and "&" escaped: no "-->" (or "--!>") can end the comment early; "--" escaped for strict parsers.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("--", "-\\u002d")
    return f"<!-- ragcode:v1 {text} -->"


def read_marker(body: str) -> Marker | None:
    """The marker at the very end of ``body``, or None when there is none or it is malformed or oversized."""
    found = _MARKER.search(body, max(0, len(body) - MAX_MARKER_CHARS - 40))
    if found is None or len(found.group(1)) > MAX_MARKER_CHARS:
        return None
    try:
        data = json.loads(found.group(1))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    repo, thread, command, request = data.get("repo"), data.get("thread"), data.get("q"), data.get("t")
    commit, references = data.get("c"), data.get("r")
    if not (_integer(repo) and isinstance(thread, str) and len(thread) <= 100 and (command is None or _integer(command))
            and isinstance(request, str) and isinstance(commit, str) and _SHA.fullmatch(commit)
            and isinstance(references, list) and len(references) <= MAX_MARKER_REFERENCES):
        return None
    parsed = []
    for reference in references:
        if not (isinstance(reference, list) and len(reference) == 4 and isinstance(reference[0], str)
                and _integer(reference[1]) and _integer(reference[2]) and isinstance(reference[3], str)):
            return None
        parsed.append((reference[0][:MAX_MARKER_PATH_CHARS], reference[1], reference[2],
                       reference[3][:MAX_MARKER_NAME_CHARS]))
    return Marker(repo, thread, command, request[:MAX_MARKER_REQUEST_CHARS], commit, tuple(parsed))


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def turns_of(comments: Sequence[Comment], bot_login: str, repo_id: int, thread: str) -> list[Turn]:
    """The earlier turns of a thread (oldest first): each reply by the App's bot user whose marker names this
    repository and thread, with the request it answered (from the command comment when it is among
    ``comments``, else from the marker)."""
    by_id = {comment.id: comment for comment in comments}
    turns = []
    for comment in comments:
        if not (comment.bot and comment.login == bot_login):
            continue
        marker = read_marker(comment.body)
        if marker is None or marker.repo_id != repo_id or marker.thread != thread:
            continue
        request = marker.request
        asked = by_id.get(marker.command) if marker.command is not None else None
        if asked is not None and not asked.bot:
            command = parse_command(asked.body)
            if command is not None and command.text:
                request = command.text
        blocks = tuple((block.language, block.code) for block in extract_code_blocks(_without_marker(comment.body))
                       if block.code.strip())[:MAX_TURN_BLOCKS]
        turns.append(Turn(request, blocks, marker.references))
    return turns


def _without_marker(body: str) -> str:
    found = _MARKER.search(body, max(0, len(body) - MAX_MARKER_CHARS - 40))
    return body[: found.start()] if found else body


def fit_turns(turns: Sequence[Turn], budget_tokens: int, lang: str) -> tuple[tuple[Turn, ...], int]:
    """The newest turns that fit ``budget_tokens`` as the prompt quotes them, and how many were dropped.

    Newest first: a turn is kept whole while it fits; from the first one that does not, older turns are kept
    short (request and references only) while those fit, and the rest are dropped.
    """
    kept: list[Turn] = []
    used, shortening = 0, False
    for number, turn in enumerate(reversed(turns[-MAX_TURNS:])):
        if not shortening:
            tokens = estimate_tokens(turn_text(turn, number + 1, lang))
            if used + tokens <= budget_tokens:
                kept.insert(0, turn)
                used += tokens
                continue
            shortening = True
        short = replace(turn, short=True)
        tokens = estimate_tokens(turn_text(short, number + 1, lang))
        if used + tokens > budget_tokens:
            break
        kept.insert(0, short)
        used += tokens
    return tuple(kept), len(turns) - len(kept)


def follow_up_query(request: str, conversation: Conversation) -> str:
    """What a follow-up searches with: the request, the two previous requests, the names of the functions the
    last answer used and the commented lines of a review comment, bounded."""
    parts = [request]
    parts += [turn.request for turn in reversed(conversation.turns[-2:])]
    if conversation.turns:
        parts.append(" ".join(name for _, _, _, name in conversation.turns[-1].references[:5]))
    if conversation.focus is not None:
        parts.append(conversation.focus.lines[:1_000])
    return "\n".join(part.strip() for part in parts if part.strip())[:MAX_QUERY_CHARS]


def follow_up_paths(conversation: Conversation) -> list[str]:
    """Files of the functions the last answer used (and of the commented lines): their functions rank higher."""
    paths = [path for path, _, _, _ in conversation.turns[-1].references] if conversation.turns else []
    if conversation.focus is not None:
        paths.append(conversation.focus.path)
    return list(dict.fromkeys(paths))


def merge_hits(first: Sequence[Hit], second: Sequence[Hit], k: int, tests: str) -> list[Hit]:
    """Hits of the request alone and of the follow-up query, each function once at its better score, best
    first (test code placed as ``tests`` says), at most ``k``."""
    best: dict[str, Hit] = {}
    for hit in [*first, *second]:
        if hit.document.id not in best or hit.score > best[hit.document.id].score:
            best[hit.document.id] = hit
    return order_tests(sorted(best.values(), key=lambda hit: hit.score, reverse=True), tests)[:k]
