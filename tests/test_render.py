"""Replies: fenced code, references with permalinks, and untrusted text kept in its place."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from bot.commands.render import render_reply, sanitize_within
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


# the sanitizer: model text re-written from its CommonMark parse

HTML_URL = "https://github.com/acme/app"
GITHUB = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")  # what GitHub turns into a mention (or a team ping)
_AUTOLINKED = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)|[\w.+\-]+@[\w\-]+\.\w")  # bare URLs and e-mails


def live_elements(markdown: str, html_url: str = HTML_URL) -> list[str]:
    """What GitHub would render live: HTML, images, links off the repository, mentions and bare URLs in text."""
    found: list[str] = []

    def own(href: str) -> bool:
        return href == html_url or href.startswith(html_url + "/")

    def walk(tokens, in_own_link: bool = False) -> None:
        for token in tokens:
            if token.type in ("html_block", "html_inline", "image"):
                found.append(f"{token.type}: {token.content}")
            elif token.type == "link_open":
                in_own_link = own(str(token.attrs["href"]))
                if not in_own_link:
                    found.append(f"link: {token.attrs['href']}")
            elif token.type == "link_close":
                in_own_link = False
            elif token.type == "text" and not in_own_link and (
                    _MENTION.search(token.content) or _AUTOLINKED.search(token.content)):
                found.append(f"text: {token.content}")
            if token.children:
                walk(token.children, in_own_link)

    walk(GITHUB.parse(markdown))
    return found


def code_blocks(markdown: str) -> list[str]:
    """The contents of every code block, as a CommonMark parser reads them."""
    return [token.content for token in GITHUB.parse(markdown) if token.type in ("fence", "code_block")]


HOSTILE = {
    "code block inside a list item": "- step one\n\n  ```python\n  x = 1\n  ```\n\n  @everyone <img src=x onerror=alert(1)>",
    "pseudo-fence": "```x`\n@org/team <b onmouseover=alert(1)>hover</b>\n```",
    "mentions": "@everyone @org/team @octocat, cc:@admin (@here)",
    "raw img": '<img src="https://evil.example/p.png" onerror="alert(1)">',
    "raw a": '<a href="https://evil.example/">click</a>',
    "markdown image": "![x](https://evil.example/?q=CODE)",
    "autolink": "<https://evil.example/> and <mailto:admin@example.com>",
    "javascript link": "[text](javascript:alert(1)) [t2](JaVaScRiPt:alert(1))",
    "link to another host": "[docs](https://evil.example/x 'title')",
    "reference-style link and image": "[text][1] ![img][2]\n\n[1]: https://evil.example/\n[2]: https://evil.example/i.png",
    "html comment": "<!-- @everyone <img src=x> -->\ntext",
    "nested blockquotes": "> > > <img src=x>\n> > ```\n> > @x\n> > ```\n> > @everyone [a](https://evil.example/)",
    "tilde fence": "~~~\n```\n~~~\n<img src=x> @everyone",
    "unclosed fence": "text\n```python\nprint(1)\n",
    "bare URLs and e-mail": "see https://evil.example/?q=SECRET, www.evil.example and admin@example.com",
    "entities": "&#64;everyone &lt;img src=x&gt; &#x3C;img src=x&#x3E; h&#116;tps://evil.example/",
    "html block": "<div>\n<script>alert(1)</script>\n</div>",
    "link in a list in a quote": "> - [x](https://evil.example/)\n>   - ![y](https://evil.example/y.png)",
    "look-alike repository links": "[a](https://github.com/acme/app.evil.example/) [b](https://github.com/acme/apple) "
                                   "[c](https://github.com/acme/app/../../evil/repo) [d](https://github.com/acme/app/%2e%2e/x)",
    "table": "| a | b |\n|---|---|\n| <img src=x> | @everyone [l](https://evil.example/) |",
    "split scheme": "**https**://evil.example/ *www*.evil.example",
    "mermaid block": "```mermaid\ngraph TD; A-->B; click A href \"https://evil.example\"\n```",
    "deep nesting": "> " * 60 + "<img src=x> @everyone",
    "long text": "[" * 20_000 + "@everyone " * 500 + "<img src=x>" * 500 + "*a" * 5_000,
}


@pytest.mark.parametrize("markdown", HOSTILE.values(), ids=HOSTILE.keys())
def test_sanitized_text_has_nothing_live(markdown):
    cleaned = sanitize(markdown, HTML_URL)
    assert live_elements(cleaned) == []
    assert sanitize(cleaned, HTML_URL) == cleaned  # stable: sanitizing twice changes nothing


@pytest.mark.parametrize("markdown", HOSTILE.values(), ids=HOSTILE.keys())
def test_escaped_text_has_nothing_live(markdown):
    reply = render_reply("", [hit(summary=markdown, path=markdown, name=markdown)], HTML_URL, "abc", "en")
    assert live_elements(reply.replace("<details>", "").replace("</details>", "").replace("<summary>", "")
                         .replace("</summary>", "").replace("<sub>", "").replace("</sub>", "")) == []


def test_math_is_shown_as_text():
    cleaned = sanitize("$\\href{https://evil.example}{click}$ and $$x$$", HTML_URL)
    outside_code = re.sub(r"`[^`]*`", "", cleaned)
    assert "$" in outside_code and re.search(r"(?<!\\)\$", outside_code) is None  # GitHub renders no math, no \\href


def test_code_keeps_its_exact_text_wherever_it_was():
    code = "x = '<b>@everyone</b> ![i](https://evil.example/)'\n```\n~~~\n"
    markdown = (f"- step\n\n  ````python\n  {code.replace(chr(10), chr(10) + '  ')}````\n\n"
                f"> ~~~~\n> {code.replace(chr(10), chr(10) + '> ')}~~~~\n\n    indented <i>code</i>\n")
    assert code_blocks(sanitize(markdown, HTML_URL)) == [code, code, "indented <i>code</i>\n"]


def test_links_into_the_repository_stay_live():
    permalink = f"{HTML_URL}/blob/abc123/app/session.py#L10-L20"
    cleaned = sanitize(f"See [the session]({permalink}), <{HTML_URL}/issues/1> and {HTML_URL}/pull/2.", HTML_URL)
    links = [token.attrs["href"] for token in GITHUB.parseInline(cleaned)[0].children if token.type == "link_open"]
    assert links == [permalink, f"{HTML_URL}/issues/1", f"{HTML_URL}/pull/2"]
    assert live_elements(sanitize(f"[x]({permalink})", "")) == []  # no repository known: no link at all


def test_safe_markdown_renders_the_same_after_sanitizing():
    markdown = ("# Title\n\nSome *emphasis*, **strong**, ~~gone~~ and `code` & more.\n\n"
                "1. first\n2. second\n   - nested\n\n> quoted\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n"
                "```python\nprint('hi')\n```\n\n---\n\n3 + 4 = 7 (really) #1 - done_now")
    assert GITHUB.render(sanitize(markdown, HTML_URL)) == GITHUB.render(markdown)


# reply size: GitHub rejects comments over 65,536 characters


def test_the_reply_fits_github_however_long_the_answer_and_references():
    body = "Intro\n\n```python\n" + "x = '@everyone'\n" * 20_000 + "```\n\nAfter the code <img src=x>"
    hits = [hit(summary="요약 " * 3_000, path=f"pkg/{'d' * 2_000}/m{number}.py", name="N" * 5_000)
            for number in range(300)]
    reply = render_reply(body, hits, HTML_URL, "abc123", "en")
    assert len(reply) <= 65_536
    assert "The answer was cut here" in reply and "more references left out" in reply
    blocks = code_blocks(reply)
    assert len(blocks) == 1 and set(blocks[0].splitlines()) == {"x = '@everyone'"}  # cut at a line, closed
    shown, left_out = reply.count("<details>"), int(re.search(r"(\d+) more references left out", reply)[1])
    assert shown >= 4 and shown + left_out == 300 and reply.rstrip().endswith("</sub>")


def test_a_cut_inside_a_list_or_quote_leaves_nothing_open():
    body = "> - item\n>   ```\n" + ">   line\n" * 30_000 + ">   ```\n> after"
    cleaned = sanitize_within(body, HTML_URL, 5_000, "(cut)")
    assert len(cleaned) <= 5_000 and cleaned.endswith("(cut)")
    assert [token.type for token in GITHUB.parse(cleaned)][-3:] == ["paragraph_open", "inline", "paragraph_close"]
