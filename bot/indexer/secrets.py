"""Redaction of secrets before code reaches a model, the index or a reply.

Two sets of detectors, both keeping the line count (line numbers of the rest of the file stay right):

- our rules: private keys, cloud and vendor tokens (AWS, GitHub, Google, OpenAI, Stripe, Slack tokens and
  webhooks, GitLab, npm), JWTs, credentials in URLs, and random-looking values assigned to secret-like names in
  code (``SECRET_KEY = "…"``) and in configuration (YAML ``password: …``, ``.properties``, ``.env``, ``export``);
- Yelp's detect-secrets: its vendor plugins, its keyword plugin and its high-entropy string plugins, with its own
  false-positive heuristics (sequential strings, UUIDs, ``*_id`` names, templates).

Redaction runs on every indexed file, so a cheap pre-filter (vendor prefixes, secret-like words, long quoted
strings) picks the candidate lines and only those are examined.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import PurePosixPath

from detect_secrets.filters import heuristic
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import (
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    REGEX_BY_FILETYPE,
    KeywordDetector,
)
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.util.filetype import determine_file_type

# A key block: the header, then base64 (after newlines or "\n" escapes) up to the footer, or to the end of the
# text when the footer is missing. A header alone (a constant in a PEM parser) is not a key.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----(?=(?:\s|\\[rn])+(?:Proc-Type|Comment|[A-Za-z0-9+/=]{16}))"
    r".*?(-----END \1PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL)

# (kind, pattern, group to replace): specific formats first, so the marker names what was found.
_VENDOR_RULES: tuple[tuple[str, re.Pattern[str], int], ...] = tuple((kind, re.compile(pattern), group) for kind, pattern, group in (
    ("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", 0),
    ("aws-secret-key", r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])", 1),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b", 0),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", 0),
    ("openai-key", r"\bsk-(?:(?:proj|svcacct|admin|ant)-[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{32,}(?![\w-]))", 0),
    ("stripe-key", r"\b(?:[sr]k_(?:live|test)|whsec)_[A-Za-z0-9]{16,}\b", 0),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", 0),
    ("slack-webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+", 0),
    ("gitlab-token", r"\bgl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_\-]{20,}", 0),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*", 0),
    ("url-credentials", r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\"'`]+:([^\s/?#\"'`]+)@", 1),
))
_SECRET_NAME = (r"[A-Za-z_][\w.\-]*?(?:secret|passw(?:or)?d|pwd|token|api[_.\-]?key|access[_.\-]?key|"
                r"private[_.\-]?key|auth[_.\-]?key|signing[_.\-]?key|encryption[_.\-]?key|credentials?)[\w.\-]*")
# name = "value", name: 'value', "name": "value", name => "value", name == "value", setName("value")
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?i)(?<![\w.\-])({_SECRET_NAME})[\"'`]?\]?\s*(?::=|=>|[!=]==?|[:=(])\s*@?([\"'`])([^\"'`\s]{{8,}})\2")
# name: value, name=value, export NAME=value (configuration files: quotes optional, up to a comment)
_CONFIG_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?:export[ \t]+|-[ \t]+)?({_SECRET_NAME})[\"']?[ \t]*[:=][ \t]*([\"']?)([^\s\"'#;,]{{8,}})\2[ \t]*(?:[#;].*)?$")
_CONFIG_SUFFIXES = frozenset({".yaml", ".yml", ".eyaml", ".properties", ".ini", ".cfg", ".conf", ".cnf", ".toml",
                              ".env", ".tfvars", ".tf", ".hcl", ".sh", ".bash", ".zsh", ".envrc"})

# The pre-filter: where a detector could possibly fire.
# (Each pattern starts with one literal character: Python's re scans those far faster than one alternation.)
_VENDOR_HINTS = tuple(re.compile(pattern) for pattern in (
    r"A(?:KIA|SIA|BIA|CCA|3T|Iza|ccountKey=|C[a-z0-9]{32})", r"g(?:h[pousr]_|ithub_pat_|l[a-z]{2,6}-)", r"xox",
    r"sk(?:-|_live_|_test_)", r"rk_(?:live|test)_", r"whsec_", r"npm_", r"_authToken", r"eyJ", r"://",
    r"T3BlbkFJ", r"pypi-", r"S(?:G\.|K[a-z0-9]{32})", r"sq0csp-", r"GR1348941",
))
_KEYWORD_HINTS = ("secret", "passw", "_pass", "pwd", "token", "credential", "key")
_KEY_OWNER = re.compile(r"(?:api|access|private|priv|auth|signing|encryption|account|client|service|db|database"
                        r"|master|secret)[_.\-]?$")  # "key" is a hint only after one of these
_QUOTED_HINT = re.compile(r"[\"'`][A-Za-z0-9+/=_\-]{20}")
_VENDOR, _KEYWORD, _QUOTED = 1, 2, 4

_VENDOR_PLUGINS: tuple[BasePlugin, ...] = (
    AWSKeyDetector(), AzureStorageKeyDetector(), BasicAuthDetector(), GitHubTokenDetector(), GitLabTokenDetector(),
    JwtTokenDetector(), NpmDetector(), OpenAIDetector(), PypiTokenDetector(), SendGridDetector(), SlackDetector(),
    SquareOAuthDetector(), StripeDetector(), TwilioKeyDetector(),
)
_LOOSE_PLUGINS: tuple[BasePlugin, ...] = (  # formats without a literal prefix to pre-filter on
    AWSKeyDetector(), DiscordBotTokenDetector(), MailchimpDetector(), TelegramBotTokenDetector(),
)
_KEYWORDS = KeywordDetector()
_ENTROPY = (Base64HighEntropyString(), HexHighEntropyString())
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
MIN_ENTROPY_STRING = 20  # shortest quoted string the entropy detectors may flag on their own


def redact(text: str, path: str = "") -> tuple[str, int]:
    """``text`` with every recognised secret replaced by ``[REDACTED:kind]``, and how many were replaced.

    ``path`` tells the file type: configuration files also get unquoted ``name: value`` rules.
    """
    text, total = _PRIVATE_KEY.subn(_key_marker, text)
    config = _is_config(path)
    keyword_style = REGEX_BY_FILETYPE.get(determine_file_type(path), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    pieces: list[str] = []
    position = 0
    for start, end, hints in _candidate_lines(text):
        line, count = _redact_line(text[start:end], hints, config, keyword_style)
        if count:
            pieces += [text[position:start], line]
            position = end
            total += count
    if not pieces:
        return text, total
    pieces.append(text[position:])
    return "".join(pieces), total


def _key_marker(match: re.Match[str]) -> str:
    return "[REDACTED:private-key]" + "\n" * match.group(0).count("\n")


def _is_config(path: str) -> bool:
    name = PurePosixPath(path).name.lower()
    return PurePosixPath(name).suffix in _CONFIG_SUFFIXES or name.startswith(".env") or name == "dockerfile"


def _candidate_lines(text: str) -> list[tuple[int, int, int]]:
    """(start, end, hints) of every line a detector could fire on, in order."""
    found: dict[int, int] = {}

    def mark(position: int, hint: int) -> None:
        start = text.rfind("\n", 0, position) + 1
        found[start] = found.get(start, 0) | hint

    for pattern in _VENDOR_HINTS:
        for match in pattern.finditer(text):
            mark(match.start(), _VENDOR)
    for match in _QUOTED_HINT.finditer(text):
        mark(match.start(), _QUOTED)
    lower = text.lower()
    for word in _KEYWORD_HINTS:
        position = lower.find(word)
        while position >= 0:
            if word != "key" or _KEY_OWNER.search(lower, max(0, position - 12), position):
                mark(position, _KEYWORD)
            position = lower.find(word, position + 1)
    lines = []
    for start in sorted(found):
        end = text.find("\n", start)
        lines.append((start, len(text) if end < 0 else end, found[start]))
    return lines


def _redact_line(line: str, hints: int, config: bool, keyword_style: dict[re.Pattern[str], int]) -> tuple[str, int]:
    """One candidate line with its secrets replaced, and how many."""
    total = 0
    if hints:
        for kind, pattern, group in _VENDOR_RULES:
            line, count = _substitute(pattern, line, partial(_marker, kind, group))
            total += count
    if hints & _KEYWORD:
        patterns = (_QUOTED_ASSIGNMENT, _CONFIG_ASSIGNMENT) if config else (_QUOTED_ASSIGNMENT,)
        for pattern in patterns:
            line, count = _substitute(pattern, line, _assignment_marker)
            total += count
    values = []
    if hints & _VENDOR:
        values += [(plugin, value) for plugin in _VENDOR_PLUGINS for value in plugin.analyze_string(line)]
    if hints & (_KEYWORD | _QUOTED):
        values += [(plugin, value) for plugin in _LOOSE_PLUGINS for value in plugin.analyze_string(line)]
    if hints & _KEYWORD:
        values += [(_KEYWORDS, value) for value in _KEYWORDS.analyze_string(line, denylist_regex_to_group=keyword_style)
                   if looks_random(value, named_secret=True)]
    if hints & _QUOTED:
        values += [(plugin, value) for plugin, value in _entropy_strings(line)]
    for plugin, value in values:
        if value in line and _entropy(value) >= 2 and "[REDACTED" not in value and not heuristic.is_templated_secret(value):
            total += line.count(value)
            line = line.replace(value, f"[REDACTED:{_kind(plugin)}]")
    return line, total


def _entropy_strings(line: str) -> Iterator[tuple[BasePlugin, str]]:
    """Quoted strings random enough for detect-secrets' entropy plugins that do not look like ids or names."""
    for plugin in _ENTROPY:
        for value in plugin.analyze_string(line):
            if (len(value) >= MIN_ENTROPY_STRING and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit
                    and looks_random(value) and not heuristic.is_potential_uuid(value)
                    and not heuristic.is_likely_id_string(value, line, plugin)):
                yield plugin, value


def _substitute(pattern: re.Pattern[str], line: str, replace: Callable[[re.Match[str]], str]) -> tuple[str, int]:
    """``pattern.subn`` counting only the matches ``replace`` actually changed."""
    changed = 0

    def one(match: re.Match[str]) -> str:
        nonlocal changed
        new = replace(match)
        changed += new != match.group(0)
        return new

    return pattern.sub(one, line), changed


def _marker(kind: str, group: int, match: re.Match[str]) -> str:
    value = match.group(group)
    if group and (value.startswith(("{", "$", "%", "<")) or "[REDACTED" in value):  # a template, not a secret
        return match.group(0)
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    return f"{match.group(0)[:start]}[REDACTED:{kind}]{match.group(0)[end:]}"


def _assignment_marker(match: re.Match[str]) -> str:
    if not looks_random(match.group(3), named_secret=True):
        return match.group(0)
    return _marker("secret-assignment", 3, match)


def looks_random(value: str, named_secret: bool = False) -> bool:
    """True for values that look generated (keys, tokens, passwords), False for words, identifiers and paths.

    A value assigned to a secret-like name (``named_secret``) needs less evidence than a bare string.
    """
    if len(value) < 8 or not value.isascii() or "://" in value or "[REDACTED" in value or value[0] in "{$%<!&*@":
        return False
    if any(char.isspace() for char in value) or value.isdigit() or heuristic.is_sequential_string(value):
        return False
    pieces = _PIECES.findall(value)  # runs of one kind: a (capitalised) word, an upper-case run, a number
    if not pieces or _entropy(value) < 2.5:
        return False
    letters = sum(map(len, pieces))
    if letters / len(pieces) < 3.5:  # generated strings switch between digits and cases all the time
        return True
    wordy = sum(len(piece) for piece in pieces if len(piece) >= 3 and piece.isalpha())
    return named_secret and wordy < 0.6 * letters  # mostly numbers and fragments rather than words


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(count / len(value) * math.log2(count / len(value)) for count in counts.values())


_KINDS: dict[type, str] = {
    Base64HighEntropyString: "high-entropy-string", HexHighEntropyString: "high-entropy-string",
    KeywordDetector: "secret-assignment",
}


def _kind(plugin: BasePlugin) -> str:
    """``[REDACTED:kind]`` for a detect-secrets plugin: its secret type in lower-case words."""
    return _KINDS.get(type(plugin)) or re.sub(r"[^a-z0-9]+", "-", str(plugin.secret_type).lower()).strip("-")

