"""Markdown building blocks that keep untrusted text inside its block, and the sanitizer for model-written Markdown.

``sanitize`` parses with a CommonMark parser (markdown-it-py) and writes the document again from its tokens:
code stays code (re-fenced so nothing inside can close it), everything else is escaped text, and the only live
element left is a link to the repository's own pages. Raw HTML, images, autolinks, bare URLs and @-mentions
come out as inert text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

MAX_SOURCE_CHARS = 100_000  # model text beyond this is not even parsed (a reply holds at most 65,536)

_BACKTICK_RUN = re.compile(r"`+")
_INLINE_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~$])")  # "$": GitHub renders $math$ (with \\href links)
# What GitHub turns into a link on its own: scheme URLs, www. hosts, mailto:/xmpp: (e-mail addresses lose
# their "@" link below like mentions do).
_BARE_URL = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.\-]{0,31}://|\bwww\.|\b(?:mailto|xmpp):)[^\s<>]*")
_URL_TRAILER = re.compile(r"[.,:;!?'\")\]*_~]+$")
_LINE_START = re.compile(r"^([-=]|\d{1,9}(?=[.)]))", re.M)
_AT = re.compile("@(?!\u200b)")
_DOT_SEGMENT = re.compile(r"(?i)/(?:\.|%2e){1,2}(?:[/?#]|$)")
# Fenced blocks that GitHub renders as something other than code (diagrams, maps, 3-D models, math).
_RENDERED_LANGUAGES = frozenset({"mermaid", "geojson", "topojson", "stl", "math", "suggestion"})

_PARSER = MarkdownIt("commonmark", {"maxNesting": 20}).enable(["table", "strikethrough"])


def fence(code: str, language: str = "") -> str:
    """``code`` in a fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(code)), default=0)
    marker = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9+#-]", "", language)
    return f"{marker}{info}\n{code.rstrip(chr(10))}\n{marker}"


def inline_code(text: str) -> str:
    """``text`` as inline code that no backtick inside can close early."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    marker = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{marker}{pad}{text}{pad}{marker}"


def escape_text(text: str) -> str:
    """One line of plain text safe in Markdown prose: no tags, links, mentions, formatting or block markers."""
    return _escape(" ".join(text.split()), None)


def sanitize(markdown: str, html_url: str = "") -> str:
    """Model-written Markdown re-written from its CommonMark parse: only code and links into ``html_url`` stay live."""
    tree = SyntaxTreeNode(_PARSER.parse(markdown[:MAX_SOURCE_CHARS]))
    return _Writer(html_url).blocks(tree.children).strip("\n")


def own_link(html_url: str) -> Callable[[str], str | None]:
    """A check that gives the normalized URL when it points into the repository at ``html_url``, else None."""
    base = _PARSER.normalizeLink(html_url.rstrip("/")) if html_url else ""

    def check(url: str) -> str | None:
        if not base:
            return None
        href = _PARSER.normalizeLink(url)
        rest = href[len(base):] if href.startswith(base) else None
        if rest is None or (rest and rest[0] not in "/?#") or _DOT_SEGMENT.search(rest):
            return None
        if any(char in href for char in "<>\\\"'` ") or not href.isprintable():
            return None
        return href

    return check


def _escape(text: str, allowed: Callable[[str], str | None] | None) -> str:
    """Prose text with Markdown and HTML escaped, mentions broken, bare URLs made inert (or kept when allowed)."""
    out, position = [], 0
    for match in _BARE_URL.finditer(text):
        url = match.group(0)
        trailer = _URL_TRAILER.search(url)
        if trailer:
            url = url[: trailer.start()]
        out.append(_escape_plain(text[position:match.start()]))
        href = allowed(url) if allowed and "://" in url else None
        out.append(f"<{href}>" if href else inline_code(url) if url else "")
        position = match.start() + len(url)
    out.append(_escape_plain(text[position:]))
    return _LINE_START.sub(r"\\\1", "".join(out))


def _escape_plain(text: str) -> str:
    escaped = _INLINE_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))
    return _AT.sub("@\u200b", escaped)


class _Writer:
    """Writes Markdown again from markdown-it's syntax tree, escaping every piece of text."""

    def __init__(self, html_url: str) -> None:
        self.allowed = own_link(html_url)

    def blocks(self, nodes: Sequence[SyntaxTreeNode], tight: bool = False) -> str:
        rendered = [text for text in (self.block(node) for node in nodes) if text.strip()]
        return ("\n" if tight else "\n\n").join(rendered)

    def block(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("fence", "code_block"):
            words = (node.info or "").split()
            language = words[0] if words and words[0].lower() not in _RENDERED_LANGUAGES else ""
            return fence(node.content, language)
        if kind == "paragraph":
            return self.inline(node.children)
        if kind == "heading":
            return "#" * int(node.tag[1:]) + " " + self.inline(node.children)
        if kind == "blockquote":
            return "\n".join(f"> {line}" if line else ">" for line in self.blocks(node.children).split("\n"))
        if kind in ("bullet_list", "ordered_list"):
            return self.list(node)
        if kind == "table":
            return self.table(node)
        if kind == "hr":
            return "---"
        if kind == "html_block":
            return "\n".join(_escape(line.strip(), None) for line in node.content.split("\n") if line.strip())
        if node.children:
            return self.blocks(node.children)
        return _escape(node.content, None)

    def list(self, node: SyntaxTreeNode) -> str:
        start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else 0
        items = []
        for number, item in enumerate(node.children, start):
            marker = f"{number}." if node.type == "ordered_list" else "-"
            tight = any(child.type == "paragraph" and child.hidden for child in item.children)
            lines = self.blocks(item.children, tight).split("\n")
            indent = " " * (len(marker) + 1)
            body = [f"{marker} {lines[0]}".rstrip()] + [f"{indent}{line}" if line else "" for line in lines[1:]]
            items.append("\n".join(body))
        return "\n".join(items)

    def table(self, node: SyntaxTreeNode) -> str:
        rows: list[str] = []
        for section in node.children:
            for row in section.children:
                cells = [self.inline(cell.children, in_table=True) or " " for cell in row.children]
                rows.append("| " + " | ".join(cells) + " |")
                if section.type == "thead":
                    rows.append("|" + "|".join(_alignment(cell) for cell in row.children) + "|")
        return "\n".join(rows)

    def inline(self, nodes: Sequence[SyntaxTreeNode], in_table: bool = False) -> str:
        out = []
        for node in nodes:
            kind = node.type
            if kind == "inline":
                out.append(self.inline(node.children, in_table))
            elif kind == "text":
                out.append(_escape(node.content, self.allowed))
            elif kind in ("softbreak", "hardbreak"):
                out.append("\n")
            elif kind == "code_inline":
                code = inline_code(node.content)
                out.append(code.replace("|", "\\|") if in_table else code)
            elif kind in ("em", "strong", "s"):
                marker = {"em": "*", "strong": "**", "s": "~~"}[kind]
                inner = self.inline(node.children, in_table)
                out.append(f"{marker}{inner}{marker}" if inner.strip() else inner)
            elif kind == "link":
                out.append(self.link(node, in_table))
            elif node.children:  # images among them: they load from anywhere (carrying data out), so alt text only
                out.append(self.inline(node.children, in_table))
            else:  # html_inline and anything unknown: shown as text
                out.append(_escape(node.content, None))
        return "".join(out)

    def link(self, node: SyntaxTreeNode, in_table: bool) -> str:
        url = str(node.attrs.get("href", ""))
        href = self.allowed(url)
        if node.markup == "autolink":
            return f"<{href}>" if href else inline_code(url)
        label = self.inline(node.children, in_table)
        if href:
            return f"[{label or _escape_plain(href)}](<{href}>)"
        code = inline_code(url).replace("|", "\\|") if in_table else inline_code(url)
        return f"{label} \\({code}\\)" if label.strip() else code


def _alignment(cell: SyntaxTreeNode) -> str:
    style = str(cell.attrs.get("style", ""))
    if "center" in style:
        return " :---: "
    if "right" in style:
        return " ---: "
    return " :--- " if "left" in style else " --- "
