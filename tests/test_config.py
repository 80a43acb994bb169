"""Configuration: environment, ragcode.toml, and one clear line per bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_REGIONS, ConfigError, load_settings


def test_defaults(tmp_path):
    settings = load_settings({}, tmp_path / "none.toml")
    assert (settings.store, settings.llm, settings.embedder, settings.summary_lang) == (
        "local", "offline", "local", "ko")
    assert settings.home == Path(".ragcode") and settings.bedrock_regions == DEFAULT_REGIONS
    assert settings.bedrock_concurrency == 8 and settings.github_api_url == "https://api.github.com"
    assert settings.min_score is None, "unset: the calibrated relevance cut"
    assert settings.tests == "demote"


def test_min_score_forces_a_fixed_cut_and_empty_means_calibrated(tmp_path):
    assert load_settings({"RAGCODE_MIN_SCORE": "0.3"}, tmp_path / "none.toml").min_score == 0.3
    assert load_settings({"RAGCODE_MIN_SCORE": " "}, tmp_path / "none.toml").min_score is None
    assert load_settings({"RAGCODE_TESTS": "exclude"}, tmp_path / "none.toml").tests == "exclude"


def test_environment_overrides_toml(tmp_path):
    toml = tmp_path / "ragcode.toml"
    toml.write_text('summary_lang = "en"\nbedrock_regions = ["us-east-1", "us-west-2"]\nmin_score = 0.5\n')
    settings = load_settings({"RAGCODE_MIN_SCORE": "0.7", "GITHUB_API_URL": "https://ghe.example.com/api/v3"}, toml)
    assert settings.summary_lang == "en" and settings.bedrock_regions == ("us-east-1", "us-west-2")
    assert settings.min_score == 0.7 and settings.github_api_url == "https://ghe.example.com/api/v3"


@pytest.mark.parametrize(("env", "names"), [
    ({"RAGCODE_LLM": "gpt"}, "RAGCODE_LLM"),
    ({"RAGCODE_BEDROCK_CONCURRENCY": "many"}, "RAGCODE_BEDROCK_CONCURRENCY"),
    ({"RAGCODE_BEDROCK_CONCURRENCY": "0"}, "RAGCODE_BEDROCK_CONCURRENCY"),
    ({"RAGCODE_STORE": "opensearch"}, "OPENSEARCH_URL"),
    ({"RAGCODE_LLM": "openai"}, "RAGCODE_OPENAI_BASE_URL"),
    ({"RAGCODE_MIN_SCORE": "2"}, "RAGCODE_MIN_SCORE"),
    ({"RAGCODE_MIN_SCORE": "nan"}, "RAGCODE_MIN_SCORE"),
    ({"RAGCODE_MIN_SCORE": "high"}, "RAGCODE_MIN_SCORE"),
    ({"RAGCODE_TESTS": "skip"}, "RAGCODE_TESTS"),
    ({"RAGCODE_SUMMARY_LANG": "jp"}, "RAGCODE_SUMMARY_LANG"),
])
def test_bad_settings_name_the_variable(tmp_path, env, names):
    with pytest.raises(ConfigError, match=names):
        load_settings(env, tmp_path / "none.toml")


def test_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "ragcode.toml"
    toml.write_text("sumary_lang = 'en'\n")
    with pytest.raises(ConfigError, match="sumary_lang"):
        load_settings({}, toml)
