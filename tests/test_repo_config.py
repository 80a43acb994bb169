"""``.github/ragcode.yml``: valid settings are used, invalid ones are reported and fall back to defaults."""

from __future__ import annotations

import git

from bot.config import Settings
from bot.indexer.filters import IndexOptions
from bot.repo_config import defaults, load_config, parse_config

SETTINGS = Settings(summary_lang="ko", command_permission="write", rate_limit_per_hour=30)


def test_a_complete_file():
    config = parse_config(
        """
include: ["src/**", "lib/*.py"]
exclude: ["**/tests/**"]
branches: [main, "release/*"]
summary_lang: en
command_permission: triage
max_file_bytes: 256KB
rate_limit_per_hour: 5
tests: exclude
""",
        SETTINGS,
    )
    assert config.errors == ()
    assert config.tests == "exclude"
    assert config.options == IndexOptions(("src/**", "lib/*.py"), ("**/tests/**",), 256 * 1024, "en")
    assert config.command_permission == "triage" and config.rate_limit_per_hour == 5
    assert config.indexes("release/1.2", "main") and config.indexes("main", "main")
    assert not config.indexes("feature/x", "main")


def test_defaults_index_only_the_default_branch():
    config = parse_config("", SETTINGS)
    assert config == defaults(SETTINGS)
    assert config.indexes("trunk", "trunk") and not config.indexes("dev", "trunk")


def test_each_bad_key_is_reported_and_keeps_its_default():
    config = parse_config(
        "include: 3\nsummary_lang: fr\ncommand_permission: owner\nmax_file_bytes: -1\nrate_limit_per_hour: lots\ncolour: blue\n"
        "exclude: [vendor/]\ntests: [drop]\n",
        SETTINGS,
    )
    assert len(config.errors) == 7
    assert any("`tests` must be one of demote, include, exclude" in error for error in config.errors)
    assert config.tests == "demote"
    assert any("colour" in error for error in config.errors)
    assert config.options == IndexOptions((), ("vendor/",), 512 * 1024, "ko")
    assert config.command_permission == "write" and config.rate_limit_per_hour == 30


def test_tests_defaults_to_the_operators_setting():
    assert parse_config("summary_lang: en\n", Settings(tests="exclude")).tests == "exclude"
    assert parse_config("tests: include\n", Settings(tests="exclude")).tests == "include"
    assert defaults(SETTINGS).tests == "demote"


def test_broken_yaml_uses_the_defaults():
    for text in ("include: [unclosed", "- just\n- a list\n"):
        config = parse_config(text, SETTINGS)
        assert config.errors and config.options == defaults(SETTINGS).options


def test_read_from_the_default_branch_of_a_bare_mirror(tmp_path):
    work = git.Repo.init(tmp_path / "work", initial_branch="main")
    (tmp_path / "work/.github").mkdir()
    (tmp_path / "work/.github/ragcode.yml").write_text("exclude: ['docs/**']\nbranches: [main, dev]\n")
    work.index.add([".github/ragcode.yml"])
    work.index.commit("config")
    mirror = git.Repo.clone_from(tmp_path / "work", tmp_path / "mirror.git", bare=True)
    config = load_config(mirror, "refs/heads/main", SETTINGS)
    assert config.options.exclude == ("docs/**",) and config.branches == ("main", "dev")
    assert load_config(mirror, "refs/heads/missing", SETTINGS) == defaults(SETTINGS)
