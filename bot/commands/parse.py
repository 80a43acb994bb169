"""Parsing ``/ragcode`` comments: help, search, reindex, else a request to generate code."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

PREFIX = re.compile(r"\A\s*/ragcode(?=\s|\Z)", re.IGNORECASE)
KEYWORDS = ("help", "search", "reindex")


@dataclass(frozen=True)
class Command:
    """A parsed command: ``kind`` is help, search, reindex or generate; ``text`` the query or request."""

    kind: str
    text: str = ""


def is_command(body: str | None) -> bool:
    """True when a comment body starts with ``/ragcode``."""
    return body is not None and PREFIX.match(body) is not None


def parse_command(body: str | None) -> Command | None:
    """The command in a comment body, or None when it is not one."""
    if body is None or not is_command(body):
        return None
    rest = PREFIX.sub("", body, count=1).strip()
    try:
        words = shlex.split(rest)
    except ValueError:  # an unbalanced quote, as in "don't": plain words then
        words = rest.split()
    if not words:
        return Command("help")
    first = words[0].lower()
    if first in ("help", "--help", "-h"):
        return Command("help")
    if first == "reindex" and len(words) == 1:
        return Command("reindex")
    if first == "search":
        query = " ".join(words[1:]).strip()
        return Command("search", query) if query else Command("help")
    return Command("generate", rest)


def help_text(lang: str = "ko") -> str:
    """The reply to ``/ragcode help``."""
    if lang == "en":
        return (
            "**ragcode** commands:\n\n"
            "- `/ragcode <request>`: write code for the request from this repository's functions\n"
            "- `/ragcode search <query>`: list the most relevant functions\n"
            "- `/ragcode reindex`: re-index the default branch from scratch\n"
            "- `/ragcode help`: this message\n\n"
            "Ask again in the same thread to follow up (\"make it async\"): the earlier answers are taken into "
            "account. In a pull request's review comment, ask for a change to the commented lines to get a "
            "suggestion you can commit. 👍/👎 on a reply tells the maintainers how it did.\n"
        )
    return (
        "**ragcode** 명령:\n\n"
        "- `/ragcode <요청>`: 이 저장소의 함수를 참고해 요청한 코드를 작성합니다\n"
        "- `/ragcode search <검색어>`: 관련 있는 함수를 찾아 보여 줍니다\n"
        "- `/ragcode reindex`: 기본 브랜치를 처음부터 다시 색인합니다\n"
        "- `/ragcode help`: 이 도움말\n\n"
        "같은 스레드에서 다시 물으면(\"이걸 async로 바꿔 줘\") 앞의 답변을 이어서 반영합니다. 풀 리퀘스트의 리뷰 "
        "댓글에서 댓글이 달린 줄을 바꿔 달라고 하면 바로 커밋할 수 있는 제안(suggestion)으로 답합니다. 답변에 👍/👎를 "
        "남기면 답변 품질을 살피는 데 쓰입니다.\n"
    )
