"""The AWS shape in-process: the Lambda receiver on SQS and DynamoDB (moto), the receiver that never opens the
store, the settings that refuse a one-machine store with SQS, the check run's Re-run button and reconcile."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import git
from starlette.testclient import TestClient

from bot.config import Settings
from bot.documents import Repository
from bot.github.client import GitHubApp
from bot.queue.sqs import SqsQueue
from bot.reconcile import reconcile
from bot.runtime import Runtime
from bot.webhooks import aws_lambda
from bot.webhooks.app import create_app
from bot.webhooks.signature import sign
from tests.aws_standin import create_stack
from tests.github_standin import (
    APP_ID,
    GitHubStandIn,
    example,
    hook_delivery,
    installation_payload,
    push_payload,
    with_repository,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "scale-out secret"
INSTALLATION = 44


def function_url_event(body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict:
    """A Lambda function URL request (payload format 2.0), shaped like the example in AWS's documentation."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "GitHub-Hookshot/abc123",
                    "content-length": str(len(body)), "host": "abcdefg.lambda-url.us-east-1.on.aws",
                    **{key.lower(): value for key, value in headers.items()}},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefg", "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefg",
            "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1",
                     "userAgent": "GitHub-Hookshot/abc123"},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": "12/Mar/2026:19:03:58 +0000", "timeEpoch": int(time.time() * 1000)},
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


class LambdaContext:
    """The attributes of the context object Lambda passes."""

    function_name = "ragcode-receiver"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    memory_limit_in_mb = 1024

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 15000


def signed(event: str, payload: dict, delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                  "X-Hub-Signature-256": sign(SECRET, body)}


def sqs_env(stack, tmp_path: Path) -> dict[str, str]:
    return {**stack.settings_env(), "RAGCODE_STORE": "opensearch", "OPENSEARCH_URL": "http://127.0.0.1:9",
            "GITHUB_WEBHOOK_SECRET": SECRET, "RAGCODE_HOME": str(tmp_path / "home"), "RAGCODE_SQS_WAIT_SECONDS": "0"}


def test_the_lambda_handler_acknowledges_a_function_url_delivery_and_enqueues_it_on_sqs(
        moto_server, aws_env, tmp_path, monkeypatch, github):
    stack = create_stack(moto_server)
    for key, value in sqs_env(stack, tmp_path).items():
        monkeypatch.setenv(key, value)
    repo = github.add_repo("acme/widgets", "https://github.example/acme/widgets.git")
    payload = push_payload(repo, INSTALLATION, "main", "0" * 40, "a" * 40)
    body, headers = signed("push", payload, delivery="lambda-1")
    answer = aws_lambda.handler(function_url_event(body, headers), LambdaContext())
    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"])["delivery"] == "lambda-1"
    # a redelivery (base64 body this time, as API Gateway sends binary bodies) is acknowledged, not queued again
    again = aws_lambda.handler(function_url_event(body, headers, base64_body=True), LambdaContext())
    assert again["statusCode"] == 200 and json.loads(again["body"])["duplicate"] is True
    unsigned = aws_lambda.handler(function_url_event(body, {**headers, "X-Hub-Signature-256": "sha256=00"}),
                                  LambdaContext())
    assert unsigned["statusCode"] == 401
    queue = SqsQueue(Settings(store="opensearch", opensearch_url="http://127.0.0.1:9", queue="sqs",
                              sqs_queue_url=stack.queue_url, dynamodb_table=stack.table, sqs_wait_seconds=0))
    job = queue.claim()
    assert job is not None and job.kind == "index" and job.payload["after"] == "a" * 40
    assert job.repo_id == repo.id and queue.claim() is None
    assert not (tmp_path / "home" / "index").exists(), "the receiver never opens the store"


def test_an_api_gateway_http_api_event_reaches_the_same_application(moto_server, aws_env, tmp_path):
    stack = create_stack(moto_server)
    settings = Settings(store="opensearch", opensearch_url="http://127.0.0.1:9", queue="sqs",
                        sqs_queue_url=stack.queue_url, dynamodb_table=stack.table, github_webhook_secret=SECRET,
                        home=tmp_path / "home")
    handler = aws_lambda.make_handler(settings)
    body, headers = signed("ping", example("ping/default"))
    event = function_url_event(body, headers)
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /webhook"
    event["requestContext"]["domainName"] = "abc123.execute-api.us-east-1.amazonaws.com"
    answer = handler(event, LambdaContext())
    assert answer["statusCode"] == 200 and "zen" in json.loads(answer["body"])


def test_a_receiver_alone_acknowledges_without_a_store_or_models(tmp_path, github, keys):
    # the store's address answers nothing: a receiver that opened it would fail its health check
    settings = Settings(home=tmp_path / "home", store="opensearch", opensearch_url="http://127.0.0.1:9",
                        github_webhook_secret=SECRET)
    repo = github.add_repo("acme/widgets", "https://github.example/acme/widgets.git")
    with TestClient(create_app(settings, work=False)) as client:
        body, headers = signed("push", push_payload(repo, INSTALLATION, "main", "0" * 40, "b" * 40))
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
        health = client.get("/healthz")
        assert health.status_code == 200 and "store" not in health.json()
        assert health.json()["jobs"] == {"queued": 1, "running": 0, "parked": 0}
    assert not (tmp_path / "home" / "index").exists()


def test_sqs_with_the_embedded_store_is_refused_at_start_up_with_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAGCODE_")}
    env.update(RAGCODE_HOME=str(tmp_path), RAGCODE_QUEUE="sqs", RAGCODE_STORE="local",
               RAGCODE_SQS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/ragcode-jobs.fifo",
               RAGCODE_DYNAMODB_TABLE="ragcode")
    for command in (["worker"], ["status"], ["serve", "--no-workers"]):
        done = subprocess.run([sys.executable, "-m", "bot", *command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "RAGCODE_QUEUE=sqs" in lines[0] and "RAGCODE_STORE=local" in lines[0]


# ---------------------------------------------------------------- one machine: Re-run and reconcile


def make_source(path: Path, files: dict[str, str]) -> git.Repo:
    repo = git.Repo.init(path, initial_branch="main")
    return commit(repo, files)


def commit(repo: git.Repo, files: dict[str, str]) -> git.Repo:
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        (root / name).write_text(text)
    repo.index.add(list(files))
    repo.index.commit("change")
    return repo


def local_settings(tmp_path: Path, github: GitHubStandIn, keys, **changes) -> Settings:
    values = dict(home=tmp_path / "home", github_api_url=github.url, github_app_id=str(APP_ID),
                  github_private_key=keys[0], github_webhook_secret=SECRET, allow_file_urls=True,
                  job_backoff_seconds=0.2, reconcile_interval=0.0)
    return Settings(**(values | changes))


def wait_idle(client: TestClient, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        counts = client.app.state.queue.counts()
        if counts["queued"] == 0 and counts["running"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(client.app.state.queue.counts())


def test_the_re_run_button_reindexes_that_commit_reusing_its_check_run(tmp_path, github, keys):
    source = make_source(tmp_path / "src", {"app.py": "def hello():\n    return 'hi'\n"})
    repo = github.add_repo("acme/widgets", f"file://{tmp_path / 'src'}")
    head = source.head.commit.hexsha
    with TestClient(create_app(local_settings(tmp_path, github, keys))) as client:
        body, headers = signed("push", push_payload(repo, INSTALLATION, "main", "0" * 40, head))
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
        wait_idle(client)
        [check] = github.checks_for("acme/widgets")
        assert check["conclusion"] == "success" and check["head_sha"] == head

        payload = with_repository(example("check_run/rerequested"), repo, INSTALLATION)
        payload["check_run"].update(id=check["id"], head_sha=head, name="ragcode")
        payload["check_run"]["check_suite"]["head_branch"] = "main"
        body, headers = signed("check_run", payload)
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
        wait_idle(client)
        history = github.check_run_history[check["id"]]
        assert [step.get("status") for step in history][-2:] == ["in_progress", "completed"]
        assert history[-2]["output"]["title"] == "Indexing (retry)"
        assert len(github.checks_for("acme/widgets")) == 1, "the re-run reports in the same check run"

        other = dict(payload, check_run={**payload["check_run"], "name": "another-app"})
        body, headers = signed("check_run", other)
        assert client.post("/webhook", content=body, headers=headers).status_code == 200
    assert github.errors == []


def test_reconcile_catches_up_a_lost_push_and_redelivers_failed_deliveries_once(tmp_path, github, keys):
    source = make_source(tmp_path / "src", {"app.py": "def hello():\n    return 'hi'\n"})
    repo = github.add_repo("acme/widgets", f"file://{tmp_path / 'src'}")
    never = github.add_repo("acme/never", f"file://{tmp_path / 'src'}")
    github.installations = {INSTALLATION}
    github.hook_deliveries = [
        hook_delivery(11, "lost-guid", 502), hook_delivery(10, "lost-guid", 0, age=120),  # every attempt failed
        hook_delivery(9, "healed-guid", 200), hook_delivery(8, "healed-guid", 503, age=90),
        hook_delivery(7, "refused-guid", 400),  # we refused it: redelivering would not help
        hook_delivery(6, "old-guid", 500, age=4 * 86400),  # too old to redeliver
    ]
    settings = local_settings(tmp_path, github, keys)
    with TestClient(create_app(settings)) as client:
        body, headers = signed("installation", installation_payload([repo], INSTALLATION))
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
        wait_idle(client)
        commit(source, {"app.py": "def hello():\n    return 'hello'\n\n\ndef bye():\n    return 'bye'\n"})
        new_head = source.head.commit.hexsha  # pushed while the service was down: no delivery ever arrives
        app, runtime, queue = GitHubApp(settings), Runtime(settings), client.app.state.queue
        try:
            report = reconcile(app, runtime.store, queue, base_url=github.url, min_rate=10)
            assert report.stopped == [] and report.errors == []
            assert {(q["repo"], q["reason"]) for q in report.queued} == {("acme/widgets", "stale"),
                                                                        ("acme/never", "not indexed")}
            stale = next(q for q in report.queued if q["reason"] == "stale")
            assert stale["head"] == new_head and stale["branch"] == "main"
            assert [r["guid"] for r in report.redelivered] == ["lost-guid"] and github.redelivered == [11]
            wait_idle(client)
            assert runtime.store.branch_state(repo.id, "main").commit == new_head
            assert runtime.store.branch_state(never.id, "main") is not None

            again = reconcile(app, runtime.store, queue, base_url=github.url, min_rate=10)
            assert again.queued == [] and again.redelivered == [] and github.redelivered == [11]

            # a run that stopped after its documents but before its vectors: at the head, yet unfinished
            state = runtime.store.branch_state(repo.id, "main")
            runtime.store.set_state(Repository(repo.id, repo.full_name, INSTALLATION), "main", state.commit,
                                    state.embedder, state.dimension, complete=False)
            unfinished = reconcile(app, runtime.store, queue, base_url=github.url, min_rate=10)
            assert [(q["reason"], q["head"]) for q in unfinished.queued] == [("unfinished", new_head)]
            wait_idle(client)
            assert runtime.store.branch_state(repo.id, "main").complete

            github.rate_limit = max(github.rate_used.values()) + 3  # nearly spent: reconcile stops, not GitHub
            budget = reconcile(app, runtime.store, queue, base_url=github.url, min_rate=10)
            assert budget.stopped and "X-RateLimit-Remaining" in budget.stopped[0]
            assert all(used <= github.rate_limit for used in github.rate_used.values())
        finally:
            runtime.close()
    assert not [error for error in github.errors if "rate limit" not in error]
