"""Model prices (USD per 1,000 tokens) for cost reports, estimates and the monthly budget.

The built-in table holds on-demand prices of Amazon Bedrock in US East (N. Virginia) for the default model, a few
other common text models and the two supported embedding models. Prices change and differ by region and
contract: ``RAGCODE_PRICES_FILE`` names a TOML or JSON file whose entries replace or extend these.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.config import ConfigError

PRICES_AS_OF = "2025-10-16"
PRICES_SOURCE = "https://aws.amazon.com/bedrock/pricing/ (on-demand, US East (N. Virginia))"
MAX_FILE_BYTES = 1 << 20  # a prices file is a short table; anything larger is a mistake
MAX_ENTRIES = 1000
_GEOGRAPHY = re.compile(r"^(?:us|us-gov|eu|apac|jp|au|ca|global)\.")  # inference profile prefixes


@dataclass(frozen=True)
class Price:
    """USD per 1,000 input and output tokens (embedding models: input only)."""

    input_per_1k: float
    output_per_1k: float = 0.0

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD for that many tokens."""
        return (input_tokens * self.input_per_1k + output_tokens * self.output_per_1k) / 1000


BUILT_IN: dict[str, Price] = {
    # Anthropic Claude (the default is Claude 3.5 Haiku)
    "anthropic.claude-3-5-haiku-20241022-v1:0": Price(0.0008, 0.004),
    "anthropic.claude-3-haiku-20240307-v1:0": Price(0.00025, 0.00125),
    "anthropic.claude-haiku-4-5-20251001-v1:0": Price(0.001, 0.005),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": Price(0.003, 0.015),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": Price(0.003, 0.015),
    "anthropic.claude-3-7-sonnet-20250219-v1:0": Price(0.003, 0.015),
    "anthropic.claude-sonnet-4-20250514-v1:0": Price(0.003, 0.015),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": Price(0.003, 0.015),
    "anthropic.claude-opus-4-1-20250805-v1:0": Price(0.015, 0.075),
    # Amazon Nova
    "amazon.nova-micro-v1:0": Price(0.000035, 0.00014),
    "amazon.nova-lite-v1:0": Price(0.00006, 0.00024),
    "amazon.nova-pro-v1:0": Price(0.0008, 0.0032),
    # Meta Llama
    "meta.llama3-1-8b-instruct-v1:0": Price(0.00022, 0.00022),
    "meta.llama3-1-70b-instruct-v1:0": Price(0.00072, 0.00072),
    # embeddings
    "amazon.titan-embed-text-v2:0": Price(0.00002),
    "cohere.embed-multilingual-v3": Price(0.0001),
    "cohere.embed-english-v3": Price(0.0001),
}


@dataclass(frozen=True)
class PriceTable:
    """Prices by model id, with the date they were taken and where from."""

    prices: dict[str, Price]
    as_of: str = PRICES_AS_OF
    source: str = PRICES_SOURCE

    def price(self, model: str) -> Price | None:
        """The price of ``model``: a model id, an inference profile id (``us.…``, ``global.…``) or a model ARN."""
        if not model:
            return None
        return self.prices.get(model) or self.prices.get(model_key(model))


def model_key(model: str) -> str:
    """The model id that ``model`` (a profile id or ARN) is priced under."""
    return _GEOGRAPHY.sub("", model.rsplit("/", 1)[-1])


def _number(path: Path, model: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: {model}.{key} must be a number of USD at least 0")
    return float(value)


def parse_prices(path: Path, data: Any) -> PriceTable:
    """The built-in table overlaid with a prices file's ``models`` (``{model: {input_per_1k, output_per_1k}}``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: expected a table with as_of, source and models")
    unknown = set(data) - {"as_of", "source", "models"}
    if unknown:
        raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: unknown key {sorted(unknown)[0]!r}")
    models = data.get("models", {})
    if not isinstance(models, dict) or len(models) > MAX_ENTRIES:
        raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: models must be a table of at most {MAX_ENTRIES} models")
    prices = dict(BUILT_IN)
    for model, entry in models.items():
        if not isinstance(entry, dict) or not entry or set(entry) - {"input_per_1k", "output_per_1k"}:
            raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: {str(model)[:100]} needs input_per_1k and "
                              "output_per_1k and nothing else")
        prices[str(model)] = Price(_number(path, model, "input_per_1k", entry.get("input_per_1k", 0.0)),
                                   _number(path, model, "output_per_1k", entry.get("output_per_1k", 0.0)))
    as_of, source = data.get("as_of", ""), data.get("source", str(path))
    if not isinstance(as_of, str) or not as_of or not isinstance(source, str):
        raise ConfigError(f"RAGCODE_PRICES_FILE: {path}: as_of (the date the prices were taken) is required")
    return PriceTable(prices, as_of[:40], source[:200])


@lru_cache(maxsize=8)
def _load(path: str) -> PriceTable:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"RAGCODE_PRICES_FILE: {file} is larger than {MAX_FILE_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"RAGCODE_PRICES_FILE: cannot read {file}: {error}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"RAGCODE_PRICES_FILE: {file} is not valid {file.suffix.lstrip('.') or 'TOML'}: "
                          f"{error}") from None
    return parse_prices(file, data)


def load_prices(prices_file: str = "") -> PriceTable:
    """The price table: built in, or overlaid with ``prices_file`` (TOML, or JSON by its ``.json`` suffix)."""
    if not prices_file:
        return PriceTable(dict(BUILT_IN))
    return _load(str(Path(prices_file).expanduser()))
