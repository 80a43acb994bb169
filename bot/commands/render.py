"""The Markdown reply to a ``/ragcode`` command, exactly as posted on GitHub and printed by ``ragcode ask``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.commands.retrieve import permalink
from bot.documents import Hit
from bot.markdown import escape_text, inline_code, sanitize

MAX_REPLY_CHARS = 65_536  # GitHub rejects a comment body over 65,536 characters (422)
MAX_REFERENCES_CHARS = 24_000  # the references never take more than this; the answer gets the rest
MAX_RELATED_CHARS = 4_000  # the related functions' list never takes more than this
MAX_SUMMARY_CHARS = 1_200  # per reference
MAX_PATH_CHARS = 300
MAX_NAME_CHARS = 200

_WORDS = {
    "ko": {"references": "참고한 함수", "lines": "줄", "relevance": "관련도", "summary": "요약",
           "none": "이 저장소에서 요청과 관련된 함수를 찾지 못했습니다. 다른 말로 다시 물어봐 주세요.",
           "indexed": "색인된 커밋", "more": "참고 함수 {count}개는 길이 제한으로 생략했습니다.",
           "shortened": "(답변이 GitHub 댓글 길이 제한을 넘어 여기서 잘랐습니다.)",
           "related": "관련 함수 (호출 관계)", "callee": "{name}이(가) 호출", "caller": "{name}을(를) 호출",
           "head": "PR 헤드"},
    "en": {"references": "References", "lines": "lines", "relevance": "relevance", "summary": "Summary",
           "none": "No function of this repository is relevant enough to this request. Try rephrasing it.",
           "indexed": "indexed commit", "more": "{count} more references left out for length.",
           "shortened": "(The answer was cut here to fit GitHub's comment size limit.)",
           "related": "Related functions (calls)", "callee": "called by {name}", "caller": "calls {name}",
           "head": "pull request head"},
}


def words(lang: str) -> dict[str, str]:
    """The reply's fixed phrases in ``lang``."""
    return _WORDS["en" if lang == "en" else "ko"]


def size(text: str) -> int:
    """Length as GitHub may count it: UTF-16 code units, never less than the characters."""
    return len(text.encode("utf-16-le")) // 2


def render_references(hits: Sequence[Hit], html_url: str, commit: str, lang: str,
                      limit: int = MAX_REFERENCES_CHARS, commit_line: bool = True) -> str:
    """One entry per function used: linked path and lines, qualified name, relevance, folded summary; then the
    indexed commit (unless ``commit_line`` is off: a GitHub reply's footer says it, with the index's freshness)."""
    w = words(lang)
    heads = sorted({hit.commit for hit in hits if hit.commit and hit.commit != commit})
    shown = [f"{w['head']} {inline_code(head[:12])}" for head in heads]
    if commit_line:
        shown.insert(0, f"{w['indexed']} {inline_code(commit[:12])}")
    head, foot = f"#### {w['references']}", f"<sub>{' · '.join(shown)}</sub>" if shown else ""
    entries: list[str] = []
    used = size(head) + size(foot) + size(w["more"]) + 16
    for number, hit in enumerate(hits, 1):
        entry = _reference(number, hit, html_url, commit, w)
        if used + size(entry) + 1 > limit:
            break
        entries.append(entry)
        used += size(entry) + 1
    if len(entries) < len(hits):
        entries.append(w["more"].format(count=len(hits) - len(entries)))
    return "\n".join([head, *entries, *([foot] if foot else [])])


def _reference(number: int, hit: Hit, html_url: str, commit: str, w: dict[str, str]) -> str:
    d = hit.document
    label = f"{escape_text(_clip(d.path, MAX_PATH_CHARS))} {w['lines']} {d.start_line}–{d.end_line}"
    link = permalink(html_url, hit.commit or commit, d.path, d.start_line, d.end_line)
    location = f"[{label}]({link})" if link else label
    return (
        f"{number}. {location} — {inline_code(_clip(d.name, MAX_NAME_CHARS))} · {w['relevance']} {hit.score:.2f}\n"
        f"   <details><summary>{w['summary']}</summary>\n\n"
        f"   {escape_text(_clip(d.summary, MAX_SUMMARY_CHARS))}\n\n   </details>"
    )


def render_related(hits: Sequence[Hit], html_url: str, commit: str, lang: str, limit: int = MAX_RELATED_CHARS) -> str:
    """The related functions (callers and callees of the references), each linked, with how it relates."""
    if not hits:
        return ""
    w = words(lang)
    lines = [f"#### {w['related']}"]
    used = size(lines[0])
    for hit in hits:
        d = hit.document
        label = f"{escape_text(_clip(d.path, MAX_PATH_CHARS))} {w['lines']} {d.start_line}–{d.end_line}"
        link = permalink(html_url, hit.commit or commit, d.path, d.start_line, d.end_line)
        how = w[hit.relation].format(name=inline_code(_clip(hit.related_to, MAX_NAME_CHARS)))
        line = f"- {f'[{label}]({link})' if link else label} — {inline_code(_clip(d.name, MAX_NAME_CHARS))} · {how}"
        if used + size(line) + 1 > limit:
            break
        lines.append(line)
        used += size(line) + 1
    return "\n".join(lines) if len(lines) > 1 else ""


def render_reply(body: str, hits: Sequence[Hit], html_url: str, commit: str, lang: str,
                 limit: int = MAX_REPLY_CHARS, commit_line: bool = True, related: Sequence[Hit] = ()) -> str:
    """The whole reply: the (sanitized, clipped) answer, then the references and the related functions; a polite
    note when nothing matched."""
    if not hits:
        return words(lang)["none"]
    references = render_references(hits, html_url, commit, lang, min(MAX_REFERENCES_CHARS, limit // 2),
                                   commit_line)
    listed = render_related(related, html_url, commit, lang, min(MAX_RELATED_CHARS, limit // 8))
    if listed:
        references = f"{references}\n\n{listed}"
    if not body.strip():
        return references
    answer = sanitize_within(body, html_url, limit - size(references) - 2, words(lang)["shortened"])
    return f"{answer}\n\n{references}" if answer else references


def sanitize_within(markdown: str, html_url: str, limit: int, note: str) -> str:
    """``sanitize(markdown)``, or when that is longer than ``limit``, a long sanitized head that fits with ``note``.

    The head is cut from the model's text at a line and sanitized again, so a cut inside a code block still ends
    closed.
    """
    whole = sanitize(markdown, html_url)
    if size(whole) <= limit:
        return whole
    budget = limit - size(note) - 2
    lines = markdown.splitlines(keepends=True)
    kept = _longest(len(lines), lambda n: "".join(lines[:n]), html_url, budget, size(whole))
    head = "".join(lines[:kept])
    if kept == 0 and lines:  # one huge first line: keep what fits of it
        first = lines[0]
        head = first[:_longest(len(first), lambda n: first[:n], html_url, budget, size(sanitize(first, html_url)))]
    text = sanitize(head, html_url)
    return f"{text}\n\n{note}" if text else ""


def _longest(count: int, prefix: Callable[[int], str], html_url: str, budget: int, whole: int) -> int:
    """A large n < count whose sanitized ``prefix(n)`` fits in ``budget`` (``whole``: the size of all ``count``).

    Sizes grow about linearly with n, so each step guesses by interpolation, every other step bisects (in case
    they do not), and the search stops within 1% of ``count``: a few sanitizer passes, not one per line.
    """
    low, high, low_size, high_size = 0, count, 0, whole
    for step in range(40):
        if high - low <= max(1, count // 100):
            break
        if step % 2 == 0 and high_size > low_size:
            guess = low + int((high - low) * (budget - low_size) / (high_size - low_size))
        else:
            guess = (low + high) // 2
        guess = min(max(guess, low + 1), high - 1)
        guess_size = size(sanitize(prefix(guess), html_url))
        if guess_size <= budget:
            low, low_size = guess, guess_size
        else:
            high, high_size = guess, guess_size
    return low


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
