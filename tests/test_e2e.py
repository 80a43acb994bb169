"""End to end beyond the whole line (``test_whole_line.py``): a crash mid-index, and start-up refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import git
import pytest

from tests.github_standin import installation_payload
from tests.processes import (
    Server,
    app_settings,
    clean_environment,
    commit_files,
    completed_check,
    free_port,
    ragcode,
    ragcode_json,
)

pytestmark = pytest.mark.slow

INSTALLATION = 77


def test_kill_mid_index_and_restart_converges_to_a_clean_run(tmp_path, github, keys):
    big = git.Repo.init(tmp_path / "big", initial_branch="main")
    files = {
        f"pkg/module_{n:03d}.py": "\n\n".join(
            f"def handler_{n}_{k}(request, retries={k}):\n    \"\"\"Handle request kind {k} of module {n}.\"\"\"\n"
            f"    for attempt in range(retries):\n        request = request.step({n}, attempt)\n    return request\n"
            for k in range(6)
        )
        for n in range(40)
    }
    head = commit_files(big, files, "many functions")
    repo = github.add_repo("acme/big", f"file://{tmp_path / 'big'}")
    env = clean_environment(RAGCODE_HOME=str(tmp_path / "home"), **app_settings(github, keys[0]))
    server = Server(env, tmp_path / "serve.log", tmp_path).start()
    try:
        assert server.deliver("installation", installation_payload([repo], INSTALLATION)).status_code == 202
        deadline = time.time() + 120
        while not github.checks_for("acme/big") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert server.jobs()["running"] == 1, "the run finished before it could be interrupted"
        server.kill()
        restarted = Server(env, tmp_path / "serve.log", tmp_path).start()
        try:
            restarted.wait_idle()
        finally:
            restarted.stop()
    finally:
        server.stop()
    check = completed_check(github, "acme/big", head)
    assert check["conclusion"] == "success" and len(github.checks_for("acme/big")) == 1

    clean = tmp_path / "clean"
    ragcode_json("index", str(tmp_path / "big"), "--repo", "acme/big", "--json",
                 env=clean_environment(RAGCODE_HOME=str(clean)), cwd=tmp_path)
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": n, "query": q}) + "\n" for n, q in
                               enumerate(["handle request kind 3 of module 42", "retries step attempt", "module 7"])))

    def state(home_dir: Path) -> tuple:
        run_env = clean_environment(RAGCODE_HOME=str(home_dir))
        status = ragcode_json("status", "--json", env=run_env, cwd=tmp_path)
        branches = {r["repo"]: {b: (s["commit"], s["functions"]) for b, s in r["branches"].items()}
                    for r in status["repositories"]}
        searched = ragcode("search", "--queries", str(queries), "--repo", "acme/big", "--json", env=run_env,
                           cwd=tmp_path)
        assert searched.returncode == 0, searched.stderr
        found = searched.stdout
        results = [[(r["path"], r["name"], r["start_line"], r["end_line"]) for r in json.loads(line)["results"]]
                   for line in found.splitlines() if line.strip()]
        return branches, results

    recovered, clean_run = state(tmp_path / "home"), state(clean)
    assert recovered[0]["acme/big"]["main"] == (head, 240)
    assert recovered == clean_run


def test_serve_refuses_to_start_without_a_webhook_secret(tmp_path):
    env = clean_environment(RAGCODE_HOME=str(tmp_path))
    done = ragcode("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "GITHUB_WEBHOOK_SECRET" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serve_loads_every_model_before_it_listens(tmp_path, github, keys):
    # start() returns at the first /healthz that answers: by then the models and Kiwi must be loaded, so the
    # first /ragcode after a start-up is not the one that waits for them
    env = clean_environment(RAGCODE_HOME=str(tmp_path / "home"), **app_settings(github, keys[0]))
    server = Server(env, tmp_path / "serve.log", tmp_path).start()
    try:
        log = server.log.read_text()
    finally:
        server.stop()
    assert "models loaded" in log, log
