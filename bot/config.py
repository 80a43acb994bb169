"""Settings from environment variables and an optional ``ragcode.toml`` in the data folder, validated once at start-up."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_REGIONS = ("us-east-1", "us-west-2", "ap-northeast-1", "eu-central-1")
DEFAULT_BEDROCK_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MAX_FILE_BYTES_CEILING = 8 * 1024 * 1024
CONFIG_NAME = "ragcode.toml"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_RELATED = 20  # related functions per answer at most (each costs prompt space)
MIN_ADMIN_TOKEN_CHARS = 24


class ConfigError(ValueError):
    """A missing or invalid setting; the message names the variable."""


class LimitExceeded(RuntimeError):
    """Work refused because it is over an operator's limit; the message names the setting and nothing internal,
    so it may be shown on GitHub."""


def default_home() -> Path:
    """The per-user data folder (``~/.local/share/ragcode`` on Linux); ``RAGCODE_HOME`` overrides it."""
    return platformdirs.user_data_path("ragcode")


@dataclass(frozen=True)
class Settings:
    """Every setting of ragcode; see the configuration table in the README."""

    home: Path = field(default_factory=default_home)
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
    opensearch_page_size: int = 1000  # hits per page when the store reads many rows (states, refs, ids)
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
    max_unit_chars: int = 24_000
    max_header_chars: int = 500
    max_context_chars: int = 2_000
    max_file_units: int = 2_000
    max_file_unit_chars: int = 2 * 1024 * 1024
    max_run_units: int = 100_000
    max_run_unit_chars: int = 100_000_000
    openai_embed_max_bytes: int = 8_000
    top_k: int = 10
    candidates: int = 50
    min_score: float | None = None  # None: the calibrated cut (bot/commands/retrieve.py)
    tests: str = "demote"
    lexical_weight: float = 1.0
    vector_weight: float = 1.0
    related: int = 6  # callers and callees of the best results added to an answer's prompt and reply; 0: none
    workers: int = 2
    command_permission: str = "write"
    rate_limit_per_hour: int = 30
    repo_rate_limit_per_hour: int = 120
    job_max_attempts: int = 5
    job_backoff_seconds: float = 10.0
    webhook_max_bytes: int = 5 * 1024 * 1024  # GitHub caps deliveries at 25 MB; pushes over a few MB are rare
    webhook_read_timeout: float = 10.0  # seconds a delivery's body may take to arrive
    webhook_max_reads: int = 32  # deliveries whose bodies are being received at once; more get 503
    max_connections: int = 256  # connections `serve` holds at once; more get 503
    embed_processes: int = 0  # processes embedding documents with the bundled model (0: one per core)
    index_cache_mb: int = 1024  # most vectors (MB) the embedded store keeps loaded in memory across branches
    fetch_timeout: float = 600.0  # seconds a git fetch of a repository may take
    max_repo_mb: int = 4096  # larger repositories are not fetched or indexed
    max_summaries_per_run: int = 20_000  # model summaries one run may ask for; the rest follow in later runs
    pause_workers: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    bedrock_cooldown: float = 5.0  # seconds a failing region rests before one probe call (doubles while it fails)
    openai_concurrency: int = 4  # most calls in flight per OpenAI-compatible base URL
    openai_timeout: float = 120.0  # seconds per OpenAI-compatible request (local models are slow)
    monthly_budget_usd: float = 0.0  # spending cap per installation and calendar month (UTC); 0: none
    prices_file: str = ""  # TOML or JSON prices that replace or extend the built-in table (bot/llm/prices.py)
    estimate_call_seconds: float = 3.0  # seconds one summary call takes, for estimates (dry runs, check runs)
    queue: str = "sqlite"  # sqlite (one machine) or sqs (SQS FIFO + DynamoDB, many workers)
    sqs_queue_url: str = ""
    dynamodb_table: str = ""
    sqs_wait_seconds: int = 20  # long poll of an idle worker (0-20)
    sqs_visibility_seconds: int = 900  # how long a job stays claimed between heartbeats (a killed worker's job returns after it)
    worker_grace_seconds: float = 90.0  # on SIGTERM, how long a worker may finish its job before releasing it
    reconcile_interval: float = 3600.0  # seconds between the workers' reconcile passes; 0: off
    reconcile_min_rate: int = 200  # reconcile stops while GitHub's X-RateLimit-Remaining is below this
    admin_token: str = ""  # enables GET /status for operators who send it as a bearer token
    thread_tokens: int = 6000  # tokens of a thread's earlier turns a follow-up carries at most; 0: none
    feedback_interval: float = 900.0  # seconds between the workers' passes over reactions to replies; 0: off
    feedback_days: float = 7.0  # replies whose reactions are read, by age


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
    "queue": ("sqlite", "sqs"),
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
    """Read settings from ``toml_path`` (else ``ragcode.toml`` in the data folder, if present) overlaid by the
    environment; validate them. The working directory is never read: a cloned repository cannot set them."""
    env = os.environ if environ is None else environ
    if toml_path is not None and not toml_path.is_file():
        raise ConfigError(f"--config: {toml_path} {'is not a file' if toml_path.exists() else 'does not exist'}")
    if "RAGCODE_HOME" in env and not env["RAGCODE_HOME"].strip():
        raise ConfigError("RAGCODE_HOME: empty; unset it for the per-user data folder or name a folder")
    home = _convert("home", Path, env["RAGCODE_HOME"]) if "RAGCODE_HOME" in env else default_home()
    toml_file = toml_path or home / CONFIG_NAME
    raw = _read_toml(toml_file) if toml_file.is_file() else {}
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


def _read_toml(toml_file: Path) -> dict[str, Any]:
    """Settings by attribute from a ``ragcode.toml``; a bad file is a ConfigError naming it."""
    try:
        with toml_file.open("rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{toml_file}: larger than {MAX_CONFIG_BYTES} bytes")
        data = tomllib.loads(text.decode("utf-8"))
    except OSError as error:
        raise ConfigError(f"{toml_file}: cannot read it ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{toml_file}: not valid TOML ({error})") from None
    known = {f.name for f in fields(Settings)} | {k.lower() for k in _ALIASES}
    raw: dict[str, Any] = {}
    for key, value in data.items():
        key = key.lower().removeprefix("ragcode_")
        if key not in known:
            raise ConfigError(f"{toml_file}: unknown key {key!r}")
        raw[_ALIASES.get(key.upper(), key)] = value
    return raw


def _validate(settings: Settings) -> None:
    for attr, choices in _CHOICES.items():
        value = getattr(settings, attr)
        if value not in choices:
            raise ConfigError(f"{variable_name(attr)}: {value!r} is not one of {', '.join(choices)}")
    for attr in ("bedrock_concurrency", "bedrock_max_attempts", "max_file_bytes", "max_unit_lines", "top_k",
                 "candidates", "workers", "bedrock_embed_dimension", "index_cache_mb", "max_repo_mb",
                 "max_summaries_per_run", "webhook_max_bytes", "webhook_max_reads", "max_connections", "max_unit_chars", "max_header_chars", "max_context_chars",
                 "max_file_units", "max_file_unit_chars", "max_run_units", "max_run_unit_chars",
                 "openai_embed_max_bytes"):
        if getattr(settings, attr) < 1:
            raise ConfigError(f"{variable_name(attr)}: must be at least 1")
    if settings.max_file_bytes > MAX_FILE_BYTES_CEILING:
        # parsing takes about 100 bytes of memory per byte of source: 8 MiB is already close to a gigabyte
        raise ConfigError(f"RAGCODE_MAX_FILE_BYTES: must be at most {MAX_FILE_BYTES_CEILING}")
    if settings.bedrock_embed_dimension not in (256, 512, 1024):
        raise ConfigError("RAGCODE_BEDROCK_EMBED_DIMENSION: Titan v2 supports 256, 512 or 1024")
    if "cohere.embed-" in settings.bedrock_embed_model and settings.bedrock_embed_dimension != 1024:
        raise ConfigError("RAGCODE_BEDROCK_EMBED_DIMENSION: Cohere Embed v3 models have 1024 dimensions")
    if not 0 <= settings.related <= MAX_RELATED:
        raise ConfigError(f"RAGCODE_RELATED: must be between 0 and {MAX_RELATED}")
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
    if not 0.0 <= settings.monthly_budget_usd < float("inf"):
        raise ConfigError("RAGCODE_MONTHLY_BUDGET_USD: must be a number of USD, at least 0 (0: no budget)")
    if not 0.0 < settings.estimate_call_seconds < float("inf"):
        raise ConfigError("RAGCODE_ESTIMATE_CALL_SECONDS: must be a positive number of seconds")
    _validate_admin_token(settings.admin_token)
    from bot.llm.prices import load_prices  # prices import this module

    load_prices(settings.prices_file)  # a broken prices file stops the start, naming RAGCODE_PRICES_FILE
    _validate_queue(settings)


def _validate_admin_token(token: str) -> None:
    if token and (len(token) < MIN_ADMIN_TOKEN_CHARS or len(token) > 512 or not token.isprintable()
                  or any(char.isspace() for char in token) or not token.isascii()):
        raise ConfigError(f"RAGCODE_ADMIN_TOKEN: must be {MIN_ADMIN_TOKEN_CHARS} to 512 printable ASCII characters "
                          "without spaces (e.g. from `openssl rand -hex 32`)")


def _validate_queue(settings: Settings) -> None:
    if not 0 <= settings.sqs_wait_seconds <= 20:
        raise ConfigError("RAGCODE_SQS_WAIT_SECONDS: must be between 0 and 20")
    if not 2 <= settings.sqs_visibility_seconds <= 43200:
        raise ConfigError("RAGCODE_SQS_VISIBILITY_SECONDS: must be between 2 and 43200")
    if settings.thread_tokens < 0:
        raise ConfigError("RAGCODE_THREAD_TOKENS: must not be negative (0 turns follow-ups off)")
    if not 0 <= settings.feedback_interval < float("inf"):
        raise ConfigError("RAGCODE_FEEDBACK_INTERVAL: must be a number of seconds, at least 0 (0: off)")
    if not 0 < settings.feedback_days <= 90:
        raise ConfigError("RAGCODE_FEEDBACK_DAYS: must be more than 0 and at most 90")
    if settings.worker_grace_seconds < 0 or settings.reconcile_interval < 0 or settings.reconcile_min_rate < 0:
        raise ConfigError("RAGCODE_WORKER_GRACE_SECONDS, RAGCODE_RECONCILE_INTERVAL and RAGCODE_RECONCILE_MIN_RATE: "
                          "must not be negative")
    if settings.queue != "sqs":
        return
    if settings.store != "opensearch":
        raise ConfigError(f"RAGCODE_QUEUE=sqs needs RAGCODE_STORE=opensearch, not RAGCODE_STORE={settings.store} "
                          "(the embedded store belongs to one machine)")
    if not settings.sqs_queue_url:
        raise ConfigError("RAGCODE_SQS_QUEUE_URL: required when RAGCODE_QUEUE=sqs")
    if not settings.sqs_queue_url.rstrip("/").endswith(".fifo"):
        raise ConfigError("RAGCODE_SQS_QUEUE_URL: must be a FIFO queue (its name ends in .fifo)")
    if not settings.dynamodb_table:
        raise ConfigError("RAGCODE_DYNAMODB_TABLE: required when RAGCODE_QUEUE=sqs")
