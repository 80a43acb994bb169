"""The ``ragcode`` command line, run as a real process: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def ragcode(*args: str, home: Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "RAGCODE_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=300)


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


def test_second_run_is_incremental(indexed, tmp_path):
    repo, home, _ = indexed
    repo.write("svc/net.py", SOURCE.replace("quantity", "amount"))
    repo.commit("rename a parameter")
    result = ragcode("index", str(repo.path), "--json", home=home, cwd=tmp_path)
    report = json.loads(result.stdout)
    assert (report["functions_updated"], report["summaries_generated"], report["functions_unchanged"]) == (1, 1, 2)


@pytest.mark.parametrize(("args", "env", "message"), [
    (("index", "/nonexistent/path"), {}, "/nonexistent/path: not a git repository"),
    (("status",), {"RAGCODE_LLM": "gpt-9"}, "RAGCODE_LLM"),
    (("status",), {"RAGCODE_STORE": "opensearch"}, "OPENSEARCH_URL"),
    (("search", "x", "--repo", "acme/none"), {}, "acme/none: not indexed"),
    (("serve",), {"GITHUB_WEBHOOK_SECRET": ""}, "GITHUB_WEBHOOK_SECRET"),
])
def test_bad_usage_and_configuration_exit_2_with_one_line(tmp_path, args, env, message):
    result = ragcode(*args, home=tmp_path / "home", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


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
