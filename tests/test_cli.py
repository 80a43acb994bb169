"""The ``ragcode`` command line, run as a real process: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import PROGRESS_SECONDS

SOURCE = '''def retry_request(url: str, attempts: int = 3) -> bytes:
    """요청이 실패하면 지정한 횟수만큼 다시 시도한다."""
    for _ in range(attempts):
        try:
            return fetch(url)
        except TimeoutError:
            continue
    raise TimeoutError(url)


class Inventory:
    def reserve_stock(self, sku: str, quantity: int) -> bool:
        """재고를 예약하고 성공 여부를 돌려준다."""
        return self.counts.get(sku, 0) >= quantity
'''


def environment(home: Path | None, env: dict | None = None) -> dict[str, str]:
    """The test's environment with ``RAGCODE_HOME`` (None: unset, so the per-user default applies)."""
    variables = {key: value for key, value in os.environ.items() if key != "RAGCODE_HOME"}
    if home is not None:
        variables["RAGCODE_HOME"] = str(home)
    return {**variables, **(env or {})}


def ragcode(*args: str, home: Path | None, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
                          env=environment(home, env), timeout=300)


@pytest.fixture
def indexed(tmp_path, make_repo):
    repo = make_repo("service")
    repo.write("svc/net.py", SOURCE)
    repo.repo.create_remote("origin", "git@github.com:acme/service.git")
    repo.commit()
    home = tmp_path / "home"
    result = ragcode("index", str(repo.path), "--json", home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return repo, home, json.loads(result.stdout)


def test_index_json_has_the_contract_fields(indexed):
    repo, _, report = indexed
    for key in ("repo", "commit", "previous_commit", "files_changed", "functions_total", "functions_added",
                "functions_updated", "functions_removed", "functions_unchanged", "summaries_generated",
                "summaries_reused", "functions_failed", "seconds"):
        assert key in report
    assert report["repo"] == "acme/service", "named after the origin remote"
    assert report["commit"] == repo.repo.head.commit.hexsha and report["previous_commit"] is None
    assert report["functions_added"] == report["functions_total"] == report["summaries_generated"] == 3


def test_search_json_and_queries_file(indexed, tmp_path):
    repo, home, _ = indexed
    result = ragcode("search", "재시도 로직", "--repo", "acme/service", "--json", home=home, cwd=tmp_path,
                     env={"RAGCODE_MIN_SCORE": "0"})
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["repo"] == "acme/service" and payload["commit"] == repo.repo.head.commit.hexsha
    assert payload["took_ms"] > 0
    best = payload["results"][0]
    assert (best["path"], best["name"], best["kind"], best["language"]) == ("svc/net.py", "retry_request",
                                                                           "function", "python")
    assert (best["start_line"], best["end_line"]) == (1, 8)
    assert best["permalink"] == f"https://github.com/acme/service/blob/{payload['commit']}/svc/net.py#L1-L8"

    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "q1", "query": "재고 예약"}\n{"id": "q2", "query": "retry a request"}\n',
                       encoding="utf-8")
    result = ragcode("search", "--queries", str(queries), "--repo", "acme/service", "--json", home=home,
                     cwd=tmp_path, env={"RAGCODE_MIN_SCORE": "0"})
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["q1", "q2"]
    assert lines[0]["results"][0]["name"] == "Inventory.reserve_stock"


def test_ask_prints_the_reply_markdown(indexed, tmp_path):
    _, home, _ = indexed
    result = ragcode("ask", "재고를 예약하는 코드", "--repo", "acme/service", "--json", home=home, cwd=tmp_path,
                     env={"RAGCODE_MIN_SCORE": "0"})
    payload = json.loads(result.stdout)
    assert payload["llm"] == "offline"
    assert "RAGCODE_LLM=bedrock" in payload["answer_markdown"]
    assert payload["references"][0]["name"] == "Inventory.reserve_stock"
    assert payload["references"][0]["permalink"] in payload["answer_markdown"]


def test_status_json(indexed, tmp_path):
    repo, home, _ = indexed
    result = ragcode("status", "--json", home=home, cwd=tmp_path)
    payload = json.loads(result.stdout)
    branch = payload["repositories"][0]["branches"]["main"]
    assert payload["repositories"][0]["repo"] == "acme/service"
    assert branch["commit"] == repo.repo.head.commit.hexsha and branch["functions"] == 3
    assert payload["queue"] == {"queued": 0, "running": 0, "parked": 0}
    assert payload["feedback"] == {}
    assert "reply feedback: no reactions yet" in ragcode("status", home=home, cwd=tmp_path).stdout


def test_status_shows_the_feedback_the_workers_counted(indexed, tmp_path):
    from bot.spend import SqliteLedger

    _, home, _ = indexed
    ledger = SqliteLedger(home / "spend.sqlite3")  # as the workers' feedback passes leave it
    ledger.record_feedback(7, "+1", 5)
    ledger.record_feedback(8, "+1", 2)
    ledger.record_feedback(7, "-1", 1)
    ledger.close()
    assert json.loads(ragcode("status", "--json", home=home, cwd=tmp_path).stdout)["feedback"] == {"+1": 7, "-1": 1}
    assert "reply feedback: +1 7, -1 1" in ragcode("status", home=home, cwd=tmp_path).stdout


def test_second_run_is_incremental(indexed, tmp_path):
    repo, home, _ = indexed
    repo.write("svc/net.py", SOURCE.replace("quantity", "amount"))
    repo.commit("rename a parameter")
    result = ragcode("index", str(repo.path), "--json", home=home, cwd=tmp_path)
    report = json.loads(result.stdout)
    assert (report["functions_updated"], report["summaries_generated"], report["functions_unchanged"]) == (1, 1, 2)


@pytest.mark.parametrize(("args", "env", "message"), [
    (("index", "/nonexistent/path"), {}, "/nonexistent/path: does not exist"),
    (("index", "/"), {}, "/: not a git repository"),
    (("status",), {"RAGCODE_LLM": "gpt-9"}, "RAGCODE_LLM"),
    (("status",), {"RAGCODE_STORE": "opensearch"}, "OPENSEARCH_URL"),
    (("search", "x", "--repo", "acme/none"), {}, "acme/none: not indexed"),
    (("serve",), {"GITHUB_WEBHOOK_SECRET": ""}, "GITHUB_WEBHOOK_SECRET: required by `ragcode serve` (with "
                                                 "GITHUB_APP_ID and GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH)"),
    (("search", "   ", "--repo", "acme/none"), {}, "search: QUERY is blank"),
    (("search", "", "--repo", "acme/none"), {}, "search: QUERY is blank"),
    (("ask", "", "--repo", "acme/none"), {}, "ask: QUERY is blank"),
    (("ask", " \t", "--repo", "acme/none"), {}, "ask: QUERY is blank"),
    (("search", "x", "--repo", "acme/none", "-k", "0"), {}, "-k: must be at least 1, not 0"),
    (("search", "x", "--repo", "acme/none", "-k", "-3"), {}, "-k: must be at least 1, not -3"),
    (("--config", "/nonexistent/ragcode.toml", "status"), {}, "--config: /nonexistent/ragcode.toml does not exist"),
    (("status", "--config", "/nonexistent/ragcode.toml"), {}, "--config: /nonexistent/ragcode.toml does not exist"),
    (("ask", "x", "--repo", "acme/none"), {}, "acme/none: not indexed"),
])
def test_bad_usage_and_configuration_exit_2_with_one_line(tmp_path, args, env, message):
    result = ragcode(*args, home=tmp_path / "home", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("-k", "0"), ("-k", "-3"), ("--branch", "main", "-k", "0")])
def test_k_below_one_is_refused_on_an_indexed_repository(indexed, tmp_path, args):
    _, home, _ = indexed
    result = ragcode("search", "재시도 로직", "--repo", "acme/service", *args, home=home, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("ragcode: -k: must be at least 1")


def test_blank_query_in_a_queries_file_is_a_usage_error(indexed, tmp_path):
    _, home, _ = indexed
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "q1", "query": "재고 예약"}\n{"id": "q2", "query": "  "}\n', encoding="utf-8")
    result = ragcode("search", "--queries", str(queries), "--repo", "acme/service", "--json", home=home,
                     cwd=tmp_path)
    assert result.returncode == 2 and "line 2 has a blank query" in result.stderr


def test_ask_on_an_unindexed_branch_is_a_usage_error(indexed, tmp_path):
    _, home, _ = indexed
    result = ragcode("ask", "재고", "--repo", "acme/service", "--branch", "develop", home=home, cwd=tmp_path)
    assert result.returncode == 2 and "acme/service@develop: not indexed" in result.stderr


# the data folder and the configuration file


def test_read_only_commands_create_no_data_folder(tmp_path):
    home = tmp_path / "home"
    commands = [("status",), ("status", "--json"), ("search", "x", "--repo", "acme/none"),
                ("search", "x", "--repo", "acme/none", "--branch", "main", "--json"),
                ("ask", "x", "--repo", "acme/none"), ("ask", "x", "--repo", "acme/none", "--branch", "main")]
    for args in commands:
        result = ragcode(*args, home=home, cwd=tmp_path)
        assert result.returncode == (0 if args[0] == "status" else 2), result.stderr
        if args[0] == "status":
            assert "nothing indexed yet" in result.stdout or '"repositories": []' in result.stdout
        else:
            assert "not indexed" in result.stderr
    assert not home.exists()
    home.mkdir()
    for args in commands:
        ragcode(*args, home=home, cwd=tmp_path)
    assert list(home.iterdir()) == [], "not even an empty index in an existing folder"


def test_default_data_folder_is_per_user_and_shared_by_every_working_directory(tmp_path, make_repo):
    repo = make_repo("service")
    repo.write("svc/net.py", SOURCE)
    repo.commit()
    data = tmp_path / "xdg-data"
    xdg = {"XDG_DATA_HOME": str(data)}
    assert ragcode("status", home=None, cwd=tmp_path, env=xdg).stdout.startswith("nothing indexed yet")
    assert not data.exists(), "status creates nothing"
    result = ragcode("index", str(repo.path), "--repo", "acme/service", home=None, cwd=repo.path, env=xdg)
    assert result.returncode == 0, result.stderr
    assert (data / "ragcode" / "index" / "ragcode.sqlite3").is_file()
    assert not (repo.path / ".ragcode").exists() and not (tmp_path / ".ragcode").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status = json.loads(ragcode("status", "--json", home=None, cwd=elsewhere, env=xdg).stdout)
    assert [entry["repo"] for entry in status["repositories"]] == ["acme/service"]


def test_ragcode_toml_in_the_working_directory_is_ignored(indexed, tmp_path):
    _, home, _ = indexed
    cloned = tmp_path / "cloned"  # a repository someone else controls, where the user runs ragcode
    cloned.mkdir()
    (cloned / "ragcode.toml").write_text(
        'llm = "openai"\nopenai_base_url = "http://127.0.0.1:9/v1"\nopenai_model = "exfiltrate"\n')
    result = ragcode("ask", "재고를 예약하는 코드", "--repo", "acme/service", "--json", home=home, cwd=cloned,
                     env={"RAGCODE_OPENAI_API_KEY": "sk-the-users-own", "RAGCODE_MIN_SCORE": "0"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["llm"] == "offline"


def _result_names(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [hit["name"] for hit in json.loads(result.stdout)["results"]]


def test_ragcode_toml_comes_from_the_data_folder_or_config(indexed, tmp_path):
    _, home, _ = indexed
    search = ("search", "재시도 로직", "--repo", "acme/service", "--json")
    strict, lenient = tmp_path / "strict.toml", tmp_path / "lenient.toml"
    strict.write_text("min_score = 1.0\n")
    lenient.write_text("min_score = 0.0\n")
    assert _result_names(ragcode("--config", str(strict), *search, home=home, cwd=tmp_path)) == []
    assert _result_names(ragcode(*search, "--config", str(strict), home=home, cwd=tmp_path)) == []
    assert len(_result_names(ragcode("--config", str(lenient), *search, home=home, cwd=tmp_path))) == 3
    assert len(_result_names(ragcode(*search, "--config", str(lenient), home=home, cwd=tmp_path))) == 3
    (home / "ragcode.toml").write_text("min_score = 1.0\n")
    assert _result_names(ragcode(*search, home=home, cwd=tmp_path)) == []
    assert len(_result_names(ragcode(*search, home=home, cwd=tmp_path, env={"RAGCODE_MIN_SCORE": "0"}))) == 3


# output for people: a terminal, a pipe, a log


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def on_terminal(*args: str, home: Path, cwd: Path, env: dict | None = None) -> str:
    """Run ragcode with stdout on a pseudo-terminal; what the terminal shows, without escape sequences."""
    primary, secondary = os.openpty()
    with open(cwd / "terminal-stderr.txt", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "bot", *args], stdout=secondary, stderr=stderr,
                                   stdin=subprocess.DEVNULL, cwd=cwd,
                                   env=environment(home, {"COLUMNS": "240", "TERM": "xterm-256color", **(env or {})}))
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(300) == 0, (cwd / "terminal-stderr.txt").read_text()
    return _ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r\n", "\n")


def test_ask_prints_readable_text_on_a_terminal_and_the_markdown_to_a_pipe(indexed, tmp_path):
    _, home, _ = indexed
    ask = ("ask", "요청이 실패하면 다시 시도하는 함수", "--repo", "acme/service")
    env = {"RAGCODE_MIN_SCORE": "0"}
    markdown = json.loads(ragcode(*ask, "--json", home=home, cwd=tmp_path, env=env).stdout)["answer_markdown"]
    assert "<details>" in markdown and "retry\\_request" in markdown, "what GitHub receives is unchanged"

    piped = ragcode(*ask, home=home, cwd=tmp_path, env=env)
    assert piped.returncode == 0 and piped.stdout == markdown + "\n", "a pipe gets the exact Markdown"

    shown = on_terminal(*ask, home=home, cwd=tmp_path, env=env)
    for markup in ("<details>", "</details>", "<summary>", "<sub>", "\\_", "\\(", "&lt;", "```", "####", "]("):
        assert markup not in shown, f"{markup!r} on the terminal:\n{shown}"
    assert "retry_request" in shown and "Inventory.reserve_stock" in shown
    assert "def retry_request(url: str, attempts: int = 3) -> bytes:" in shown, "the code is shown as code"
    assert "https://github.com/acme/service/blob/" in shown, "permalinks stay visible"


def test_progress_is_logged_in_lines_when_stderr_is_not_a_terminal(tmp_path, make_repo):
    repo = make_repo("service")
    repo.write("svc/net.py", SOURCE)
    for number in range(400):  # chunking reports every 200 files and writing every 256 documents
        repo.write(f"notes/{number:03}.txt", "note\n")
    repo.commit()
    result = ragcode("index", str(repo.path), "--repo", "acme/service", "--json", home=tmp_path / "home",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seconds = json.loads(result.stdout)["seconds"]
    lines = result.stderr.splitlines()
    assert all(re.fullmatch(r"ragcode: (chunking|summarizing|embedding|writing) \d+/\d+", line) for line in lines), lines
    chunking = [line for line in lines if " chunking " in line]
    assert chunking[0] == "ragcode: chunking 200/401" and chunking[-1] == "ragcode: chunking 401/401"
    for stage in ("chunking", "summarizing", "embedding", "writing"):
        reported = [line.split()[-1].split("/") for line in lines if f" {stage} " in line]
        assert reported and reported[-1][0] == reported[-1][1], f"{stage} ends with a line at its total"
        assert len(reported) <= 2 + seconds // PROGRESS_SECONDS, "a line at most every PROGRESS_SECONDS"


KOREAN_QUERIES = ["재시도 로직", "재고를 예약하는 코드", "요청이 실패하면 다시 시도", "성공 여부를 돌려주는 함수",
                  "지정한 횟수만큼 반복", "주문 수량 확인", "시간 초과 오류 처리"]


def test_took_ms_of_the_first_korean_query_excludes_loading(indexed, tmp_path):
    _, home, _ = indexed
    queries = tmp_path / "korean.jsonl"
    queries.write_text("".join(json.dumps({"id": n, "query": q}, ensure_ascii=False) + "\n"
                               for n, q in enumerate(KOREAN_QUERIES)), encoding="utf-8")
    result = ragcode("search", "--queries", str(queries), "--repo", "acme/service", "--json", home=home,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    took = [json.loads(line)["took_ms"] for line in result.stdout.splitlines()]
    assert len(took) == len(KOREAN_QUERIES)
    first, rest = took[0], statistics.median(took[1:])
    # loading Kiwi inside the first query costs 1-2 s on an idle machine (5 s on a busy one)
    assert first < 1000 and first <= max(5 * rest, 250), took


def test_index_follows_the_repositorys_own_configuration(tmp_path, make_repo):
    repo = make_repo("configured")
    repo.write("src/app.py", "def keep():\n    return 1\n")
    repo.write("scripts/tool.py", "def drop():\n    return 2\n")
    repo.write(".github/ragcode.yml", "exclude: ['scripts/**', '.github/**']\nsummary_lang: en\ncolour: blue\n")
    repo.commit()
    home = tmp_path / "home"
    result = ragcode("index", str(repo.path), "--repo", "acme/configured", "--json", home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unknown key `colour`" in result.stderr
    found = ragcode("search", "keep drop", "--repo", "acme/configured", "--json", home=home, cwd=tmp_path,
                    env={"RAGCODE_MIN_SCORE": "0"})
    paths = {r["path"] for r in json.loads(found.stdout)["results"]}
    assert paths == {"src/app.py"}


def test_tests_flag_ranks_test_code_on_search_and_ask(indexed, tmp_path):
    repo, home, _ = indexed
    repo.write("tests/test_net.py", 'def test_retry_request_retries_a_failed_request():\n'
                                    '    """실패한 요청을 지정한 횟수만큼 다시 시도하는지 확인한다."""\n'
                                    '    assert retry_request("http://example.com", attempts=2)\n')
    repo.commit("a test")
    assert ragcode("index", str(repo.path), "--json", home=home, cwd=tmp_path).returncode == 0
    query = "실패한 요청을 다시 시도하는 함수"
    found = {}
    for mode in ("include", "demote", "exclude"):
        result = ragcode("search", query, "--repo", "acme/service", "--tests", mode, "--json", home=home, cwd=tmp_path,
                         env={"RAGCODE_MIN_SCORE": "0"})
        assert result.returncode == 0, result.stderr
        found[mode] = [(r["path"], r["name"], r["score"]) for r in json.loads(result.stdout)["results"]]
    assert {path for path, _, _ in found["include"]} == {"svc/net.py", "tests/test_net.py"}
    assert [score for *_, score in found["include"]] == sorted((score for *_, score in found["include"]), reverse=True)
    assert found["demote"][-1][0] == "tests/test_net.py" and sorted(found["demote"]) == sorted(found["include"])
    assert found["exclude"] == [item for item in found["demote"] if item[0] != "tests/test_net.py"]
    asked = ragcode("ask", query, "--repo", "acme/service", "--tests", "exclude", "--json", home=home, cwd=tmp_path)
    payload = json.loads(asked.stdout)
    assert payload["references"][0]["name"] == "retry_request", "the calibrated cut answers it"
    assert all(reference["path"] != "tests/test_net.py" for reference in payload["references"])
    rejected = ragcode("search", query, "--repo", "acme/service", "--tests", "skip", home=home, cwd=tmp_path)
    assert rejected.returncode == 2 and "--tests" in rejected.stderr
