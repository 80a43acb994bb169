"""A real ``ragcode serve`` process answering in threads: a follow-up in an issue and a suggestion in a review
thread, against the GitHub stand-in and the Bedrock stand-in (which records what reached the model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bedrock_standin import BedrockStandin, RegionConfig
from tests.github_standin import (
    comment_payload,
    installation_payload,
    review_comment_payload,
)
from tests.processes import Server, app_settings, clean_environment
from tests.test_followups import PULL, PULL_CLIENT, make_source

pytestmark = pytest.mark.slow

INSTALLATION = 77


def test_serve_answers_a_follow_up_from_the_thread_and_a_review_comment_with_a_suggestion(tmp_path: Path, github,
                                                                                         keys) -> None:
    _, base, head = make_source(tmp_path / "src")
    repo = github.add_repo("acme/net", f"file://{tmp_path / 'src'}", octocat="write")
    github.open_pull(repo, PULL, head)

    with BedrockStandin({"us-east-1": RegionConfig(latency=0.005)}) as bedrock:
        env = clean_environment(
            RAGCODE_HOME=str(tmp_path / "home"), RAGCODE_LLM="bedrock", RAGCODE_EMBEDDER="bedrock",
            RAGCODE_BEDROCK_REGIONS="us-east-1", RAGCODE_SUMMARY_LANG="en", RAGCODE_RECONCILE_INTERVAL="0",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.url, AWS_ACCESS_KEY_ID="AKIDSTANDIN",
            AWS_SECRET_ACCESS_KEY="standin-secret", AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-creds"),
            **app_settings(github, keys[0]))
        server = Server(env, tmp_path / "serve.log", tmp_path).start()
        try:
            assert server.deliver("installation", installation_payload([repo], INSTALLATION)).status_code == 202
            server.wait_idle()
            for number, body in enumerate(["/ragcode fetch a URL over HTTP, retrying failed requests",
                                           "/ragcode make it async"], 2_000_001):
                github.add_comment(repo.full_name, 1, body, comment_id=number)
                assert server.deliver("issue_comment", comment_payload(repo, INSTALLATION, body, comment_id=number)
                                      ).status_code == 202
                server.wait_idle()
            follow_up_prompt = bedrock.prompts[-1]
            comment = github.add_review_comment(repo.full_name, PULL, "/ragcode make this function async",
                                                path="net/client.py", line=16, start_line=14, commit_id=head,
                                                comment_id=2_000_010)
            payload = review_comment_payload(repo, INSTALLATION, comment, head=head, base=base, pull=PULL)
            assert server.deliver("pull_request_review_comment", payload).status_code == 202
            server.wait_idle()
        finally:
            server.stop()
        assert bedrock.errors == []
    first, follow_up = [c["body"] for c in github.comments_on(repo.full_name, 1)]
    assert "fetch_with_retry" in first and "net/client.py" in follow_up
    conversation = follow_up_prompt[follow_up_prompt.index("<conversation>"):follow_up_prompt.index("</conversation>")]
    assert "Request: fetch a URL over HTTP, retrying failed requests" in conversation
    assert "def generated():" in conversation and "net/client.py:4-11 fetch_with_retry" in conversation
    [suggestion] = github.replies_in(repo.full_name, 2_000_010)
    lines = PULL_CLIENT.split("\n")[13:16]
    assert suggestion["body"].startswith("````suggestion\n" + "\n".join(["async def http_get(url):", *lines[1:]])
                                         + "\n````\n")
    assert "#### References" in suggestion["body"] and "Was this helpful? React with 👍 or 👎." in suggestion["body"]
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert github.errors == []
