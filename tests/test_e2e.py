"""End to end: a real ``ragcode serve`` process, the stand-in GitHub API and file:// repositories on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import git
import httpx
import pytest

from bot.webhooks.signature import sign
from tests.github_standin import (
    GitHubStandIn,
    comment_payload,
    generate_private_key,
    installation_payload,
    push_payload,
)

pytestmark = pytest.mark.slow

APP_ID = 5150
SECRET = "e2e webhook secret"
INSTALLATION = 77
ROOT = Path(__file__).resolve().parents[1]
AWS_KEY = "AKIA" + "Q3EGRIKPQ7VXTW5D"  # planted; must never reach a reply
PERMALINK = re.compile(r"\((https://github\.example/[^/]+/[^/]+)/blob/([0-9a-f]{40})/([^#)]+)#L(\d+)-L(\d+)\) — `([^`]+)`")

CALC_V1 = '''\
def add(a, b):
    """Return the sum of two numbers."""
    return a + b


def subtract(a, b):
    """Return a minus b."""
    return a - b


def multiply(a, b):
    """Return the product of two numbers."""
    return a * b


def divide(a, b):
    """Return a divided by b."""
    return a / b
'''

CALC_V2 = '''\
def add(a, b):
    """Return the sum of two numbers, rounding floats to six places."""
    total = a + b
    return round(total, 6) if isinstance(total, float) else total


def subtract(a, b):
    """Return a minus b, never below zero."""
    return max(a - b, 0)


def multiply(a, b):
    """Return the product of two numbers."""
    return a * b


def power(base, exponent):
    """Raise base to an integer exponent."""
    return base ** exponent
'''

CLOUD = f'''\
def storage_client(region):
    """Connect to the object storage of a region with the deploy credentials."""
    access_key = "{AWS_KEY}"
    return connect(region, access_key)
'''

SAUCE = '''\
def quantum_flux_capacitor(gigawatts):
    """Charge the quantum flux capacitor of the secret sauce machine."""
    return gigawatts * 1.21
'''


def commit_files(repo: git.Repo, files: dict[str, str | None], message: str) -> str:
    """Write (or delete, for None) files and commit; the new commit sha."""
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        if text is None:
            repo.index.remove([name], working_tree=True)
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        repo.index.add([name])
    return repo.index.commit(message).hexsha


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m bot serve`` in a subprocess."""

    def __init__(self, home: Path, github: GitHubStandIn, private_key: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / f"serve-{self.port}.log"
        self.env = {
            **os.environ, "RAGCODE_HOME": str(home), "GITHUB_API_URL": github.url, "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_PRIVATE_KEY": private_key, "GITHUB_WEBHOOK_SECRET": SECRET, "RAGCODE_ALLOW_FILE_URLS": "1",
            "RAGCODE_JOB_BACKOFF_SECONDS": "1", **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=log,
            )
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not start:\n" + self.log.read_text())

    def deliver(self, event: str, payload: dict) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}
        return httpx.post(f"{self.url}/webhook", content=body, headers=headers, timeout=30)

    def jobs(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/healthz", timeout=5).json()["jobs"]

    def wait_idle(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs["queued"] == 0 and jobs["running"] == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"jobs still pending: {self.jobs()}\n" + self.log.read_text()[-5000:])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def keys():
    return generate_private_key()


@pytest.fixture
def github(keys):
    standin = GitHubStandIn(APP_ID, keys[1]).start()
    yield standin
    standin.stop()


def completed_check(github: GitHubStandIn, repo: str, sha: str) -> dict:
    runs = [run for run in github.checks_for(repo) if run["head_sha"] == sha and run.get("status") == "completed"]
    assert runs, f"no completed check run on {sha}: {github.checks_for(repo)}"
    return runs[-1]


def test_install_push_and_ask(tmp_path, github, keys):
    widgets = git.Repo.init(tmp_path / "widgets", initial_branch="main")
    broken_config = "exclude: ['.github/**']\ncolour: blue\n"
    first = commit_files(widgets, {"calc.py": CALC_V1, "cloud.py": CLOUD, ".github/ragcode.yml": broken_config}, "calc")
    sauce = git.Repo.init(tmp_path / "sauce", initial_branch="main")
    commit_files(sauce, {"sauce.py": SAUCE}, "sauce")
    repo = github.add_repo("acme/widgets", f"file://{tmp_path / 'widgets'}", octocat="write")
    other = github.add_repo("acme/sauce", f"file://{tmp_path / 'sauce'}", octocat="write")
    repo.pull_files[7] = ["calc.py"]
    server = Server(tmp_path / "home", github, keys[0]).start()
    try:
        # install: a full index of each repository's default branch
        response = server.deliver("installation", installation_payload([repo, other], INSTALLATION))
        assert response.status_code == 202
        server.wait_idle()
        installed = completed_check(github, "acme/widgets", first)
        assert installed["conclusion"] == "success"
        assert installed["output"]["title"] == "5 added, 0 updated, 0 removed, 5 summarized (configuration has errors)"
        assert "unknown key" in installed["output"]["summary"] and "colour" in installed["output"]["summary"]

        # a push that changes two functions, adds one and deletes one
        second = commit_files(widgets, {"calc.py": CALC_V2, ".github/ragcode.yml": "exclude: ['.github/**']\n"}, "rework")
        response = server.deliver("push", push_payload(repo, INSTALLATION, "main", first, second))
        assert response.status_code == 202
        server.wait_idle()
        check = completed_check(github, "acme/widgets", second)
        assert check["conclusion"] == "success"
        assert check["output"]["title"] == "1 added, 2 updated, 1 removed, 3 summarized"
        assert "| Summaries generated | 3 |" in check["output"]["summary"]
        history = github.check_run_history[check["id"]]
        assert history[0]["status"] == "in_progress" and history[-1]["status"] == "completed"

        # a question: 👀, then a reply whose permalinks point at the indexed lines of the pushed commit
        ask = comment_payload(repo, INSTALLATION, "/ragcode 두 수를 더하는 함수를 써 줘 (add two numbers)", comment_id=501)
        assert server.deliver("issue_comment", ask).status_code == 202
        server.wait_idle()
        assert {"comment": 501, "content": "eyes"}.items() <= github.reactions[-1].items()
        reply = github.comments_on("acme/widgets", 1)[-1]["body"]
        links = PERMALINK.findall(reply)
        assert links, reply
        lines = CALC_V2.splitlines()
        for html_url, sha, path, start, end, name in links:
            assert (html_url, sha) == ("https://github.example/acme/widgets", second)
            if path == "calc.py":
                code = lines[int(start) - 1:int(end)]
                assert code[0].startswith(f"def {name}(") and code[-1].startswith("    return")
        assert any(name == "add" for *_, name in links)

        # secrets never reach a reply; the other repository's code never shows up
        for number, question in enumerate(["/ragcode search storage client credentials access key",
                                           "/ragcode connect to object storage with the deploy credentials",
                                           "/ragcode search quantum flux capacitor"], start=600):
            server.deliver("issue_comment", comment_payload(repo, INSTALLATION, question, comment_id=number))
        server.wait_idle()
        replies = [c["body"] for c in github.comments_on("acme/widgets", 1)[-3:]]
        assert any("cloud.py" in body for body in replies[:2])
        for body in replies:
            assert "AKIA" not in body and AWS_KEY not in body
            assert "quantum_flux" not in body and "acme/sauce" not in body and "sauce.py" not in body

        # on a pull request, its changed files are asked for (and boost retrieval)
        pr = comment_payload(repo, INSTALLATION, "/ragcode search multiply", issue=7, pull_request=True,
                             comment_id=700)
        server.deliver("issue_comment", pr)
        server.wait_idle()
        assert github.recorded("GET", r"/repos/acme/widgets/pulls/7/files")
        assert "calc.py" in github.comments_on("acme/widgets", 7)[-1]["body"]

        # deleting a feature branch is fine; the default branch's index is never dropped
        deleted = push_payload(repo, INSTALLATION, "main", second, "0" * 40)
        assert server.deliver("push", deleted).status_code == 202
        server.wait_idle()
        server.deliver("issue_comment", comment_payload(repo, INSTALLATION, "/ragcode search add", comment_id=800))
        server.wait_idle()
        assert "calc.py" in github.comments_on("acme/widgets", 1)[-1]["body"]
        assert github.errors == []
    finally:
        server.stop()


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
    home = tmp_path / "home"
    server = Server(home, github, keys[0]).start()
    try:
        assert server.deliver("installation", installation_payload([repo], INSTALLATION)).status_code == 202
        deadline = time.time() + 120
        while not github.checks_for("acme/big") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert server.jobs()["running"] == 1, "the run finished before it could be interrupted"
        server.kill()
        restarted = Server(home, github, keys[0]).start()
        try:
            restarted.wait_idle()
        finally:
            restarted.stop()
    finally:
        server.stop()
    check = completed_check(github, "acme/big", head)
    assert check["conclusion"] == "success" and len(github.checks_for("acme/big")) == 1

    clean = tmp_path / "clean"
    env = {**os.environ, "RAGCODE_HOME": str(clean)}
    subprocess.run([sys.executable, "-m", "bot", "index", str(tmp_path / "big"), "--repo", "acme/big", "--json"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": n, "query": q}) + "\n" for n, q in
                               enumerate(["handle request kind 3 of module 42", "retries step attempt", "module 7"])))

    def state(home_dir: Path) -> tuple:
        run_env = {**os.environ, "RAGCODE_HOME": str(home_dir)}
        status = json.loads(subprocess.run([sys.executable, "-m", "bot", "status", "--json"], cwd=ROOT, env=run_env,
                                           check=True, capture_output=True, text=True).stdout)
        branches = {r["repo"]: {b: (s["commit"], s["functions"]) for b, s in r["branches"].items()}
                    for r in status["repositories"]}
        found = subprocess.run([sys.executable, "-m", "bot", "search", "--queries", str(queries), "--repo", "acme/big",
                                "--json"], cwd=ROOT, env=run_env, check=True, capture_output=True, text=True).stdout
        results = [[(r["path"], r["name"], r["start_line"], r["end_line"]) for r in json.loads(line)["results"]]
                   for line in found.splitlines() if line.strip()]
        return branches, results

    recovered, clean_run = state(home), state(clean)
    assert recovered[0]["acme/big"]["main"] == (head, 240)
    assert recovered == clean_run


def test_serve_refuses_to_start_without_a_webhook_secret(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    env["RAGCODE_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "GITHUB_WEBHOOK_SECRET" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serve_loads_every_model_before_it_listens(tmp_path, github, keys):
    # start() returns at the first /healthz that answers: by then the models and Kiwi must be loaded, so the
    # first /ragcode after a start-up is not the one that waits for them
    server = Server(tmp_path / "home", github, keys[0]).start()
    try:
        log = server.log.read_text()
    finally:
        server.stop()
    assert "models loaded" in log, log
