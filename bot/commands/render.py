"""The Markdown reply to a ``/ragcode`` command, exactly as posted on GitHub and printed by ``ragcode ask``."""

from __future__ import annotations

from collections.abc import Sequence

from bot.commands.retrieve import permalink
from bot.documents import Hit
from bot.markdown import escape_text, inline_code, sanitize

_WORDS = {
    "ko": {"references": "참고한 함수", "lines": "줄", "relevance": "관련도", "summary": "요약",
           "none": "이 저장소에서 요청과 관련된 함수를 찾지 못했습니다. 다른 말로 다시 물어봐 주세요.",
           "indexed": "색인된 커밋"},
    "en": {"references": "References", "lines": "lines", "relevance": "relevance", "summary": "Summary",
           "none": "No function of this repository is relevant enough to this request. Try rephrasing it.",
           "indexed": "indexed commit"},
}


def words(lang: str) -> dict[str, str]:
    """The reply's fixed phrases in ``lang``."""
    return _WORDS["en" if lang == "en" else "ko"]


def render_references(hits: Sequence[Hit], html_url: str, commit: str, lang: str) -> str:
    """One entry per function used: linked path and lines, qualified name, relevance, folded summary."""
    w = words(lang)
    entries = [f"#### {w['references']}"]
    for number, hit in enumerate(hits, 1):
        d = hit.document
        label = f"{escape_text(d.path)} {w['lines']} {d.start_line}–{d.end_line}"
        link = permalink(html_url, commit, d.path, d.start_line, d.end_line)
        location = f"[{label}]({link})" if link else label
        entries.append(
            f"{number}. {location} — {inline_code(d.name)} · {w['relevance']} {hit.score:.2f}\n"
            f"   <details><summary>{w['summary']}</summary>\n\n   {escape_text(d.summary)}\n\n   </details>"
        )
    entries.append(f"<sub>{w['indexed']} {inline_code(commit[:12])}</sub>")
    return "\n".join(entries)


def render_reply(body: str, hits: Sequence[Hit], html_url: str, commit: str, lang: str) -> str:
    """The whole reply: the (sanitized) answer, then the references; a polite note when nothing matched."""
    if not hits:
        return words(lang)["none"]
    parts = [sanitize(body).strip()] if body.strip() else []
    parts.append(render_references(hits, html_url, commit, lang))
    return "\n\n".join(parts)
