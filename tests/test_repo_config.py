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


def test_a_repository_can_lower_the_operators_limits_never_raise_them():
    config = parse_config("max_file_bytes: 4096MB\nrate_limit_per_hour: 100000\n", SETTINGS)
    assert config.options.max_file_bytes == SETTINGS.max_file_bytes and config.rate_limit_per_hour == 30
    assert any("capped at the operator's limit" in error and "max_file_bytes" in error for error in config.errors)
    assert any("rate_limit_per_hour" in error for error in config.errors)
    lowered = parse_config("max_file_bytes: 1KB\nrate_limit_per_hour: 2\n", SETTINGS)
    assert (lowered.options.max_file_bytes, lowered.rate_limit_per_hour, lowered.errors) == (1024, 2, ())


def test_hostile_configuration_files_fall_back_to_the_defaults_with_a_reason():
    globs = "include:\n" + "".join(f"  - 'src/{n}/**/*.py'\n" for n in range(100_000))
    bomb = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)}]\n" for n in range(9))
    deep = "include: " + "[" * 5_000 + "]" * 5_000 + "\n"
    many = "include:\n" + "".join(f"  - 'a{n}/*'\n" for n in range(250))
    wild = "exclude: ['" + "*a" * 40 + "']\n"
    for text, reason in ((globs, "larger than 64 KB"), (bomb, "anchors and aliases"), (deep, "nested more than"),
                         (many, "at most 200"), (wild, "wildcards")):
        config = parse_config(text, SETTINGS)
        assert config.options == defaults(SETTINGS).options, reason
        assert any(reason in error for error in config.errors), (reason, config.errors)


def test_too_many_branch_patterns_are_refused():
    config = parse_config("branches:\n" + "".join(f"  - 'b{n}'\n" for n in range(30)), SETTINGS)
    assert config.branches == () and any("at most 20" in error for error in config.errors)


def test_pull_requests_from_forks_is_off_unless_the_file_turns_it_on():
    assert defaults(SETTINGS).pull_requests_from_forks is False
    assert parse_config("pull_requests_from_forks: true\n", SETTINGS).pull_requests_from_forks is True
    refused = parse_config("pull_requests_from_forks: 'yes please'\nrate_limit_per_hour: 3\n", SETTINGS)
    assert refused.pull_requests_from_forks is False and refused.rate_limit_per_hour == 3
    assert refused.errors == ("`pull_requests_from_forks` must be true or false",)


def test_auto_answer_is_off_unless_set_to_true_and_anything_else_is_reported():
    assert parse_config("", SETTINGS).auto_answer is False
    assert parse_config("auto_answer: true\n", SETTINGS).auto_answer is True
    for hostile in ('auto_answer: "yes please"\n', "auto_answer: 1\n", "auto_answer: [true]\n"):
        config = parse_config(hostile, SETTINGS)
        assert config.auto_answer is False and config.errors == ("`auto_answer` must be true or false",)
