"""Redaction of recognised secrets before code reaches a model, the index or a reply."""

from __future__ import annotations

import re
from functools import partial

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private-key", re.compile(
        r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?(-----END \1PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL)),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("aws-secret-key", re.compile(
        r"(?i)(aws_?secret_?access_?key\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
)


def _replacement(kind: str, match: re.Match[str]) -> str:
    if kind == "aws-secret-key":
        return f"{match.group(1)}[REDACTED:{kind}]"
    # keep the line count so line numbers of the rest of the file stay right
    return f"[REDACTED:{kind}]" + "\n" * match.group(0).count("\n")


def redact(text: str) -> tuple[str, int]:
    """``text`` with every recognised secret replaced, and how many were replaced."""
    total = 0
    for kind, pattern in _PATTERNS:
        text, count = pattern.subn(partial(_replacement, kind), text)
        total += count
    return text, total
