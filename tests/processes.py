"""Real ``ragcode`` processes for end-to-end tests: the command line, and ``serve`` with signed deliveries."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import git
import httpx

from bot.webhooks.signature import sign
from tests.github_standin import APP_ID, GitHubStandIn

SECRET = "e2e webhook secret"
_OWN_PREFIXES = ("RAGCODE_", "AWS_", "OPENSEARCH_", "GITHUB_")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any ragcode, AWS, OpenSearch or GitHub setting, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}, **settings}


def app_settings(github: GitHubStandIn, private_key: str) -> dict[str, str]:
    """What ``serve`` needs to act as the App against the GitHub stand-in, cloning file:// repositories."""
    return {"GITHUB_API_URL": github.url, "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": private_key,
            "GITHUB_WEBHOOK_SECRET": SECRET, "RAGCODE_ALLOW_FILE_URLS": "1", "RAGCODE_JOB_BACKOFF_SECONDS": "1"}


def ragcode(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` run to completion (cwd: a folder without a ragcode.toml)."""
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ragcode_json(*args: str, env: dict[str, str], cwd: Path) -> Any:
    """The JSON ``python -m bot ARGS`` prints; the command must succeed."""
    done = ragcode(*args, env=env, cwd=cwd)
    assert done.returncode == 0, f"ragcode {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def commit_files(repo: git.Repo, files: dict[str, str | None], message: str) -> str:
    """Write (or delete, for None) files and commit; the new commit sha."""
    root = Path(str(repo.working_tree_dir))
    for name, text in files.items():
        if text is None:
            repo.index.remove([name], working_tree=True)
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        repo.index.add([name])
    return repo.index.commit(message).hexsha


def completed_check(github: GitHubStandIn, repo: str, sha: str) -> dict[str, Any]:
    """The last completed check run on ``sha``."""
    runs = [run for run in github.checks_for(repo) if run["head_sha"] == sha and run.get("status") == "completed"]
    assert runs, f"no completed check run on {sha}: {github.checks_for(repo)}"
    return runs[-1]


class Server:
    """``python -m bot serve`` in a subprocess with exactly the environment ``env``."""

    def __init__(self, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.log, self.cwd = env, log, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        """Start and wait until ``/healthz`` answers 200."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
                                            cwd=self.cwd, env=self.env, stdout=log, stderr=log)
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

    def deliver(self, event: str, payload: dict[str, Any]) -> httpx.Response:
        """POST one signed delivery to ``/webhook``."""
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}
        return httpx.post(f"{self.url}/webhook", content=body, headers=headers, timeout=30)

    def jobs(self) -> dict[str, int]:
        """Job counts by state, from ``/healthz``."""
        jobs: dict[str, int] = httpx.get(f"{self.url}/healthz", timeout=5).json()["jobs"]
        return jobs

    def wait_idle(self, timeout: float = 300) -> None:
        """Wait until no job is queued or running; fail when a job was parked."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs["queued"] == 0 and jobs["running"] == 0:
                assert jobs.get("parked", 0) == 0, "a job was parked:\n" + self.log.read_text()[-5000:]
                return
            time.sleep(0.2)
        raise AssertionError(f"jobs still pending: {self.jobs()}\n" + self.log.read_text()[-5000:])

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
