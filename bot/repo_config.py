"""Per-repository configuration: ``.github/ragcode.yml`` on the default branch, validated, defaults on error.

The file comes from anyone who can push to the default branch, so it is bounded like any other input: its size,
its YAML (no anchors or aliases, little nesting), the number and length of its patterns; and it can only lower
the operator's limits, never raise them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import git
import yaml

from bot.commands.testcode import MODES
from bot.config import Settings
from bot.indexer.filters import IndexOptions

CONFIG_PATH = ".github/ragcode.yml"
PERMISSIONS = ("read", "triage", "write", "maintain", "admin")
LANGUAGES = ("ko", "en")
KEYS = ("include", "exclude", "branches", "summary_lang", "command_permission", "max_file_bytes", "rate_limit_per_hour",
        "tests", "pull_requests_from_forks", "auto_answer")
UNITS = {"": 1, "b": 1, "kb": 1024, "k": 1024, "mb": 1024 * 1024, "m": 1024 * 1024}
MAX_CONFIG_BYTES = 64 * 1024
MAX_DEPTH = 8  # nesting of YAML collections
MAX_PATTERNS = {"include": 200, "exclude": 200, "branches": 20}
MAX_PATTERN_CHARS = 300
MAX_WILDCARDS = 16  # per pattern: fnmatch's regex grows with each


@dataclass(frozen=True)
class RepoConfig:
    """What a repository configures; ``errors`` are the problems found, each with defaults used instead."""

    options: IndexOptions
    branches: tuple[str, ...] = ()  # empty: the default branch only
    command_permission: str = "write"
    rate_limit_per_hour: int = 30
    errors: tuple[str, ...] = field(default=())
    tests: str = "demote"  # how test code ranks in answers: demote, include or exclude
    pull_requests_from_forks: bool = False  # index the heads of pull requests from forks (read-only) as overlays
    auto_answer: bool = False  # every new issue gets the related functions (search only, no model)

    def indexes(self, branch: str, default_branch: str) -> bool:
        """True when ``branch`` is to be indexed."""
        if not self.branches:
            return branch == default_branch
        return any(fnmatchcase(branch, pattern) for pattern in self.branches)


def defaults(settings: Settings) -> RepoConfig:
    """The configuration of a repository without ``.github/ragcode.yml``."""
    options = IndexOptions.from_settings(settings)
    return RepoConfig(options, (), settings.command_permission, settings.rate_limit_per_hour, tests=settings.tests)


def parse_config(text: str, settings: Settings) -> RepoConfig:
    """Validate the YAML text; each invalid key is reported and keeps its default."""
    base = defaults(settings)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        return _with_errors(base, [f"{CONFIG_PATH} is larger than {MAX_CONFIG_BYTES // 1024} KB"])
    try:
        problem = _structure_problem(text)
        data = None if problem else yaml.safe_load(text)
    except yaml.YAMLError as error:
        return _with_errors(base, [f"{CONFIG_PATH} is not valid YAML: {_first_line(error)}"])
    if problem:
        return _with_errors(base, [f"{CONFIG_PATH}: {problem}"])
    if data is None:
        return base
    if not isinstance(data, dict):
        return _with_errors(base, [f"{CONFIG_PATH} must be a mapping of settings"])
    errors: list[str] = [f"unknown key `{key}`" for key in data if key not in KEYS]
    include = _globs(data, "include", errors)
    exclude = _globs(data, "exclude", errors)
    branches = _globs(data, "branches", errors)
    summary_lang = _choice(data, "summary_lang", LANGUAGES, base.options.summary_lang, errors)
    permission = _choice(data, "command_permission", PERMISSIONS, base.command_permission, errors)
    max_bytes = _at_most(_size(data, "max_file_bytes", base.options.max_file_bytes, errors),
                         base.options.max_file_bytes, "max_file_bytes", errors)
    rate = _at_most(_count(data, "rate_limit_per_hour", base.rate_limit_per_hour, errors),
                    base.rate_limit_per_hour, "rate_limit_per_hour", errors)
    tests = _choice(data, "tests", MODES, base.tests, errors)
    forks = _flag(data, "pull_requests_from_forks", base.pull_requests_from_forks, errors)
    auto_answer = _flag(data, "auto_answer", base.auto_answer, errors)
    options = IndexOptions(include=include, exclude=exclude, max_file_bytes=max_bytes, summary_lang=summary_lang)
    return RepoConfig(options, branches, permission, rate, tuple(errors), tests, forks, auto_answer)


def load_config(repo: git.Repo, ref: str, settings: Settings) -> RepoConfig:
    """The configuration at ``ref`` of a (bare) repository; defaults when the file or the ref is missing."""
    try:
        blob = repo.commit(ref).tree / CONFIG_PATH
    except (KeyError, ValueError, git.BadName):
        return defaults(settings)
    if blob.size > MAX_CONFIG_BYTES:
        return _with_errors(defaults(settings), [f"{CONFIG_PATH} is larger than {MAX_CONFIG_BYTES // 1024} KB"])
    data = blob.data_stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _with_errors(defaults(settings), [f"{CONFIG_PATH} is not UTF-8 text"])
    return parse_config(text, settings)


def _with_errors(config: RepoConfig, errors: list[str]) -> RepoConfig:
    return dataclasses.replace(config, errors=tuple(errors))


def _structure_problem(text: str) -> str:
    """What makes the YAML unsafe to load (aliases can expand exponentially, deep nesting costs recursion)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return "anchors and aliases are not supported"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return ""


def _at_most(value: int, limit: int, key: str, errors: list[str]) -> int:
    """``value`` capped at the operator's ``limit`` (a repository can lower a limit, never raise it)."""
    if value > limit:
        errors.append(f"`{key}` is capped at the operator's limit of {limit}")
        return limit
    return value


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _globs(data: dict[str, Any], key: str, errors: list[str]) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        errors.append(f"`{key}` must be a list of glob patterns")
        return ()
    if len(value) > MAX_PATTERNS[key]:
        errors.append(f"`{key}` has {len(value)} patterns; at most {MAX_PATTERNS[key]} are allowed")
        return ()
    bad = [item for item in value if len(item) > MAX_PATTERN_CHARS or sum(item.count(c) for c in "*?[") > MAX_WILDCARDS]
    if bad:
        errors.append(f"`{key}` has patterns longer than {MAX_PATTERN_CHARS} characters or with more than "
                      f"{MAX_WILDCARDS} wildcards")
        return ()
    return tuple(item.strip() for item in value)


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], default: str, errors: list[str]) -> str:
    value = data.get(key)
    if value is None:
        return default
    if value not in choices:
        errors.append(f"`{key}` must be one of {', '.join(choices)}")
        return default
    return str(value)


def _flag(data: dict[str, Any], key: str, default: bool, errors: list[str]) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.append(f"`{key}` must be true or false")
        return default
    return value


def _count(data: dict[str, Any], key: str, default: int, errors: list[str]) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"`{key}` must be a whole number, 0 or more")
        return default
    return value


def _size(data: dict[str, Any], key: str, default: int, errors: list[str]) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        number = value.strip().lower().replace(" ", "")
        unit = number.lstrip("0123456789")
        digits = number[: len(number) - len(unit)]
        if digits and unit in UNITS:
            value = int(digits) * UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(f"`{key}` must be a size in bytes (for example 524288 or 512KB)")
        return default
    return value
