"""Processes of the AWS shape on one machine, for the multi-process test and ``benchmarks/bench_scaleout.py``:
one ``ragcode serve --no-workers`` receiver and ``ragcode worker`` processes on SQS and DynamoDB (moto's server),
the OpenSearch stand-in as the shared store and the GitHub and Bedrock stand-ins, all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bot.webhooks.signature import sign

ROOT = Path(__file__).resolve().parents[1]
APP_ID = 7170
SECRET = "scale-out secret"


def free_port() -> int:
    """A free port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """One ``python -m bot`` subprocess with an HTTP port and a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> Process:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", *self.args, "--port", str(self.port)],
                                            cwd=ROOT, env=self.env, stdout=out, stderr=out)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-5000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()[-5000:]}")

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=10).json()
        return answer

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def entries(self) -> list[dict[str, Any]]:
        """The JSON log lines of the process."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found


def cluster_env(home: Path, *, github_url: str, private_key: str, opensearch_url: str, bedrock_url: str,
                aws: dict[str, str], stack_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a receiver or worker of the cluster (each process gets its own home: mirrors are
    caches, nothing on a worker's disk is needed for correctness)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAGCODE_", "GITHUB_", "AWS_"))}
    env.update(aws)
    env.update(stack_env)
    env.update({
        "RAGCODE_HOME": str(home), "GITHUB_API_URL": github_url, "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": private_key, "GITHUB_WEBHOOK_SECRET": SECRET, "RAGCODE_ALLOW_FILE_URLS": "1",
        "RAGCODE_STORE": "opensearch", "OPENSEARCH_URL": opensearch_url, "RAGCODE_OPENSEARCH_INDEX_PREFIX": "scale",
        "RAGCODE_LLM": "bedrock", "RAGCODE_EMBEDDER": "bedrock", "RAGCODE_BEDROCK_REGIONS": "us-east-1",
        "RAGCODE_BEDROCK_EMBED_DIMENSION": "256", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_url,
        "RAGCODE_SQS_WAIT_SECONDS": "0",  # moto busy-loops on long polls; idle workers poll every second instead
        "RAGCODE_RECONCILE_INTERVAL": "0", "RAGCODE_JOB_BACKOFF_SECONDS": "1",
    })
    env.update(extra)
    return env


def deliver(url: str, event: str, payload: dict[str, Any] | bytes, delivery: str | None = None) -> httpx.Response:
    """A signed delivery to a receiver."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}
    return httpx.post(f"{url}/webhook", content=body, headers=headers, timeout=30)


def log_time(entry: dict[str, Any]) -> float:
    """Epoch seconds of a JSON log line (``time`` as logging formats it, local time with milliseconds)."""
    return datetime.strptime(entry["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
