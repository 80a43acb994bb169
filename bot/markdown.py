"""Markdown building blocks that keep untrusted text inside its block."""

from __future__ import annotations

import html
import re

_BACKTICK_RUN = re.compile(r"`+")
_INLINE_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


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
    """Plain text safe in Markdown prose and HTML blocks: no tags, no links, no formatting."""
    return _INLINE_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("@", "@\u200b")


_FENCE_LINE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")


def sanitize(markdown: str) -> str:
    """Model-written Markdown with raw HTML and @-mentions neutralised outside code blocks."""
    lines, fence_marker = [], ""
    for line in markdown.splitlines():
        match = _FENCE_LINE.match(line)
        if fence_marker:
            if match and match.group(2)[0] == fence_marker[0] and len(match.group(2)) >= len(fence_marker) \
                    and not line.strip()[len(match.group(2)):]:
                fence_marker = ""
            lines.append(line)
            continue
        if match:
            fence_marker = match.group(2)
            lines.append(line)
            continue
        lines.append(_MENTION.sub("@\u200b", line.replace("<", "&lt;").replace(">", "&gt;")))
    if fence_marker:  # an unclosed block would swallow everything after it
        lines.append(fence_marker)
    return "\n".join(lines)
