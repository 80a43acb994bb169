"""Settings from environment variables and an optional ``ragcode.toml``, validated once at start-up."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_REGIONS = ("us-east-1", "us-west-2", "ap-northeast-1", "eu-central-1")
DEFAULT_BEDROCK_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


class ConfigError(ValueError):
    """A missing or invalid setting; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Every setting of ragcode; see the configuration table in the README."""

    home: Path = Path(".ragcode")
    store: str = "local"
    opensearch_url: str = ""
    opensearch_user: str = ""
    opensearch_password: str = ""
    opensearch_index_prefix: str = "ragcode"
    opensearch_verify_certs: bool = True
    opensearch_ca_certs: str = ""
    opensearch_aws_sigv4: bool = False
    opensearch_aws_region: str = ""
    opensearch_aws_service: str = "es"
    opensearch_shards: int = 1
    opensearch_timeout: float = 30.0
    opensearch_max_retries: int = 3
    llm: str = "offline"
    embedder: str = "local"
    bedrock_regions: tuple[str, ...] = DEFAULT_REGIONS
    bedrock_model: str = DEFAULT_BEDROCK_MODEL
    bedrock_embed_model: str = "amazon.titan-embed-text-v2:0"
    bedrock_embed_dimension: int = 1024
    bedrock_concurrency: int = 8
    bedrock_max_attempts: int = 6
    bedrock_timeout: float = 60.0
    openai_base_url: tuple[str, ...] = ()
    openai_model: str = ""
    openai_embed_model: str = ""
    openai_api_key: str = ""
    summary_lang: str = "ko"
    github_api_url: str = "https://api.github.com"
    github_app_id: str = ""
    github_private_key: str = ""
    github_private_key_path: str = ""
    github_webhook_secret: str = ""
    allow_file_urls: bool = False
    max_file_bytes: int = 512 * 1024
    max_unit_lines: int = 200
    top_k: int = 10
    candidates: int = 50
    min_score: float | None = None  # None: the calibrated cut (bot/commands/retrieve.py)
    tests: str = "demote"
    lexical_weight: float = 1.0
    vector_weight: float = 1.0
    workers: int = 2
    command_permission: str = "write"
    rate_limit_per_hour: int = 30
    repo_rate_limit_per_hour: int = 120
    job_max_attempts: int = 5
    job_backoff_seconds: float = 10.0
    webhook_max_bytes: int = 25 * 1024 * 1024
    pause_workers: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    bedrock_cooldown: float = 5.0  # seconds a failing region rests before one probe call (doubles while it fails)
    openai_concurrency: int = 4  # most calls in flight per OpenAI-compatible base URL
    openai_timeout: float = 120.0  # seconds per OpenAI-compatible request (local models are slow)


# variable name -> Settings attribute, for the names that do not follow RAGCODE_<ATTR>.
_ALIASES = {
    "OPENSEARCH_URL": "opensearch_url",
    "OPENSEARCH_USER": "opensearch_user",
    "OPENSEARCH_PASSWORD": "opensearch_password",
    "OPENSEARCH_VERIFY_CERTS": "opensearch_verify_certs",
    "OPENSEARCH_CA_CERTS": "opensearch_ca_certs",
    "GITHUB_API_URL": "github_api_url",
    "GITHUB_APP_ID": "github_app_id",
    "GITHUB_PRIVATE_KEY": "github_private_key",
    "GITHUB_PRIVATE_KEY_PATH": "github_private_key_path",
    "GITHUB_WEBHOOK_SECRET": "github_webhook_secret",
}
_CHOICES = {
    "store": ("local", "opensearch"),
    "llm": ("offline", "bedrock", "openai"),
    "embedder": ("local", "bedrock", "openai"),
    "summary_lang": ("ko", "en"),
    "command_permission": ("read", "triage", "write", "maintain", "admin"),
    "tests": ("demote", "include", "exclude"),
}


def variable_name(attr: str) -> str:
    """The environment variable that sets ``attr``."""
    for name, target in _ALIASES.items():
        if target == attr:
            return name
    return "RAGCODE_" + attr.upper()


def _convert(attr: str, kind: Any, raw: Any) -> Any:
    name = variable_name(attr)
    text = str(raw).strip()
    try:
        if kind is bool or kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind is int or kind == "int":
            return int(text)
        if kind is float or kind == "float":
            return float(text)
        if kind == "float | None":
            return float(text) if text else None
        if kind is Path or kind == "Path":
            return Path(text).expanduser()
        if str(kind).startswith("tuple"):
            items = raw if isinstance(raw, list) else text.split(",")
            return tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
    except ValueError:
        raise ConfigError(f"{name}: invalid value {text!r}") from None
    return text


def load_settings(environ: dict[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Read settings from ``ragcode.toml`` (if present) overlaid by the environment; validate them."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    toml_file = toml_path or Path("ragcode.toml")
    if toml_file.is_file():
        try:
            data = tomllib.loads(toml_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{toml_file}: not valid TOML ({error})") from None
        known = {f.name for f in fields(Settings)} | {k.lower() for k in _ALIASES}
        for key, value in data.items():
            key = key.lower().removeprefix("ragcode_")
            if key not in known:
                raise ConfigError(f"{toml_file}: unknown key {key!r}")
            raw[_ALIASES.get(key.upper(), key)] = value
    for f in fields(Settings):
        name = variable_name(f.name)
        if name in env:
            raw[f.name] = env[name]
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in raw and f.name != "extra":
            values[f.name] = _convert(f.name, f.type, raw[f.name])
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    for attr, choices in _CHOICES.items():
        value = getattr(settings, attr)
        if value not in choices:
            raise ConfigError(f"{variable_name(attr)}: {value!r} is not one of {', '.join(choices)}")
    for attr in ("bedrock_concurrency", "bedrock_max_attempts", "max_file_bytes", "max_unit_lines", "top_k",
                 "candidates", "workers", "bedrock_embed_dimension"):
        if getattr(settings, attr) < 1:
            raise ConfigError(f"{variable_name(attr)}: must be at least 1")
    if settings.bedrock_embed_dimension not in (256, 512, 1024):
        raise ConfigError("RAGCODE_BEDROCK_EMBED_DIMENSION: Titan v2 supports 256, 512 or 1024")
    if settings.min_score is not None and not 0.0 <= settings.min_score <= 1.0:
        raise ConfigError("RAGCODE_MIN_SCORE: must be between 0 and 1 (or empty for the calibrated cut)")
    uses_bedrock = "bedrock" in (settings.llm, settings.embedder)
    if uses_bedrock and not settings.bedrock_regions:
        raise ConfigError("RAGCODE_BEDROCK_REGIONS: at least one region is needed")
    if "openai" in (settings.llm, settings.embedder):
        if not settings.openai_base_url:
            raise ConfigError("RAGCODE_OPENAI_BASE_URL: required when RAGCODE_LLM or RAGCODE_EMBEDDER is openai")
        if settings.llm == "openai" and not settings.openai_model:
            raise ConfigError("RAGCODE_OPENAI_MODEL: required when RAGCODE_LLM=openai")
        if settings.embedder == "openai" and not settings.openai_embed_model:
            raise ConfigError("RAGCODE_OPENAI_EMBED_MODEL: required when RAGCODE_EMBEDDER=openai")
    if settings.store == "opensearch" and not settings.opensearch_url:
        raise ConfigError("OPENSEARCH_URL: required when RAGCODE_STORE=opensearch")
