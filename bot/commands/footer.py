"""The last line of a reply: the commit it was answered from, how fresh the index is, and a request for 👍/👎."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.markdown import inline_code

_SHA = re.compile(r"[0-9a-f]{7,64}")
MAX_BRANCH_CHARS = 100

_WORDS = {
    "ko": {"from": "{branch}의 {commit} 기준으로 답했습니다", "current": "색인이 최신입니다",
           "behind": "색인이 {branch}보다 커밋 {count}개 뒤처져 있습니다", "behind_one": "색인이 {branch}보다 커밋 1개 뒤처져 있습니다",
           "behind_unknown": "색인이 {branch}보다 뒤처져 있습니다", "pending": "색인 작업이 대기 중입니다",
           "invite": "도움이 되었나요? 👍 또는 👎 반응으로 알려 주세요."},
    "en": {"from": "Answered from {commit} on {branch}", "current": "the index is up to date",
           "behind": "the index is {count} commits behind {branch}", "behind_one": "the index is 1 commit behind {branch}",
           "behind_unknown": "the index is behind {branch}", "pending": "an index run is pending",
           "invite": "Was this helpful? React with 👍 or 👎."},
}


@dataclass(frozen=True)
class Freshness:
    """The commit an answer used and where its branch stands on GitHub."""

    branch: str
    commit: str
    head: str | None = None  # the branch head on GitHub; None when it could not be read
    behind: int | None = None  # commits from the indexed one to the head; None when the mirror cannot tell
    pending: bool = False  # an index run of the repository is queued or running


def footer(freshness: Freshness, html_url: str, lang: str) -> str:
    """``<sub>`` line: the commit (linked), how far the index is behind its branch, a pending run, the 👍/👎 ask."""
    w = _WORDS["en" if lang == "en" else "ko"]
    branch = inline_code(freshness.branch[:MAX_BRANCH_CHARS])
    short = inline_code(freshness.commit[:7])
    commit = f"[{short}]({html_url.rstrip('/')}/commit/{freshness.commit})" if html_url and _SHA.fullmatch(
        freshness.commit) else short
    parts = [w["from"].format(commit=commit, branch=branch)]
    if freshness.head is not None and freshness.head == freshness.commit:
        parts.append(w["current"])
    elif freshness.head is not None:
        if freshness.behind is None or freshness.behind < 1:
            parts.append(w["behind_unknown"].format(branch=branch))
        else:
            key = "behind_one" if freshness.behind == 1 else "behind"
            parts.append(w[key].format(count=f"{freshness.behind:,}", branch=branch))
    if freshness.pending:
        parts.append(w["pending"])
    return f"<sub>{' · '.join(parts)}. {w['invite']}</sub>"
