"""Replies: fenced code, references with permalinks, and untrusted text kept in its place."""

from __future__ import annotations

from bot.commands.render import render_reply
from bot.documents import Document, Hit
from bot.markdown import escape_text, fence, inline_code, sanitize


def hit(summary: str = "요약", name: str = "Session.mount", path: str = "app/session.py") -> Hit:
    document = Document(id="x", repo_id=101, branch="main", path=path, name=name, kind="method",
                        language="python", start_line=10, end_line=20, code="def mount(): pass",
                        content_hash="h", summary=summary)
    return Hit(document=document, score=0.912)


def test_fence_is_longer_than_backticks_inside():
    block = fence("x = '```'\ny = '````'", "python")
    assert block.startswith("`````python\n") and block.endswith("\n`````")


def test_inline_code_survives_backticks():
    assert inline_code("a`b") == "`` a`b ``"


def test_escape_text_neutralises_html_links_and_mentions():
    text = escape_text('<img src=x onerror=alert(1)> [click](http://evil) @octocat')
    assert "<img" not in text and "](http" not in text and "@octocat" not in text


def test_sanitize_keeps_code_and_escapes_prose_html():
    markdown = "Here <script>alert(1)</script> @admin\n```html\n<div>kept</div>\n```\n<b>x</b>"
    cleaned = sanitize(markdown)
    assert "<div>kept</div>" in cleaned and "<script>" not in cleaned and "<b>" not in cleaned
    assert "@admin" not in cleaned


def test_sanitize_closes_an_unclosed_fence():
    assert sanitize("```python\nprint(1)").endswith("```")


def test_reply_has_references_with_permalinks_and_folded_summaries():
    reply = render_reply("```python\nprint(1)\n```", [hit()], "https://ghe.example.com/acme/app", "abc123", "ko")
    assert reply.startswith("```python\nprint(1)\n```")
    assert "[app/session.py 줄 10–20](https://ghe.example.com/acme/app/blob/abc123/app/session.py#L10-L20)" in reply
    assert "`Session.mount`" in reply and "관련도 0.91" in reply
    assert "<details><summary>요약</summary>" in reply


def test_reply_escapes_hostile_summary_and_path():
    reply = render_reply("", [hit(summary="</details><script>x</script>", path="a](http://evil)/b.py")],
                         "https://github.com/acme/app", "abc", "en")
    assert "<script>" not in reply and "</details><script>" not in reply
    assert reply.count("</details>") == 1
    assert "a%5D%28http%3A//evil%29/b.py" in reply


def test_reply_without_hits_is_polite():
    assert "Try rephrasing" in render_reply("anything", [], "https://github.com/a/b", "abc", "en")
