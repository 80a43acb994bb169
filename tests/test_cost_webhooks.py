"""Cost through the webhook service: estimates in check runs, tokens and cost, /metrics, the monthly budget.

The service runs in-process (Starlette's test client) against the GitHub stand-in and the Bedrock stand-in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bot.spend import SqliteLedger
from bot.webhooks.app import create_app
from tests.bedrock_standin import RegionConfig
from tests.conftest import StartStandin
from tests.github_standin import (
    comment_payload,
    installation_payload,
    push_payload,
)
from tests.test_webhooks import INSTALLATION, make_repo, make_settings, post, wait_idle

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "korean_corpus" / "shop"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def shop(tmp_path, github):
    files = {f"shop/{name}": (CORPUS / name).read_text(encoding="utf-8") for name in ("coupons.py", "orders.py")}
    repo = make_repo(tmp_path / "src", files)
    return repo, github.add_repo("acme/shop", f"file://{tmp_path / 'src'}", octocat="write")


def settings_for(tmp_path, github, keys, **overrides):
    return make_settings(tmp_path / "home", github, keys, llm="bedrock", bedrock_regions=("us-east-1",),
                         bedrock_cooldown=0.5, **overrides)


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric on /metrics, by their labels."""
    text = client.get("/metrics").text
    return {tuple(sorted(sample.labels.items())): sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name}


def test_a_first_index_shows_its_estimate_before_the_calls_then_tokens_and_cost(
    bedrock: StartStandin, tmp_path, github, keys, shop
) -> None:
    standin = bedrock({"us-east-1": RegionConfig()})
    settings = settings_for(tmp_path, github, keys)
    with TestClient(create_app(settings)) as client:
        assert post(client, "installation", installation_payload([shop[1]], INSTALLATION)).status_code == 202
        wait_idle(client, timeout=120)
        [check] = github.checks_for("acme/shop")
        history = github.check_run_history[check["id"]]
        planned = [number for number, edit in enumerate(history)
                   if "functions to summarize" in edit.get("output", {}).get("title", "")]
        assert planned and history[planned[0]]["status"] == "in_progress"
        assert planned[0] < len(history) - 1 and history[-1]["status"] == "completed"
        estimate = history[planned[0]]["output"]
        assert estimate["title"].startswith(f"Indexing: {standin.total('ok')} functions to summarize, about $")
        assert "**Estimate before any model call**" in estimate["summary"]
        assert "| Estimated cost | $0.0" in estimate["summary"] and "Prices as of 2025-10-16" in estimate["summary"]

        summary = check["output"]["summary"]
        input_tokens, output_tokens = standin.total("input_tokens"), standin.total("output_tokens")
        assert f"| Tokens (input / output) | {input_tokens:,} / {output_tokens:,} |" in summary
        cost = (input_tokens * 0.0008 + output_tokens * 0.004) / 1000
        assert f"| Cost | ${cost:,.4f} |" in summary
        assert f"| `{HAIKU}` | `us-east-1` | {standin.total('ok')} | {input_tokens:,} | {output_tokens:,} |" in summary
        assert "| Estimated before the run | $0.0" in summary

        tokens = samples(client, "ragcode_llm_tokens_total")
        assert tokens[(("direction", "input"), ("model", HAIKU), ("region", "us-east-1"))] >= input_tokens
        assert samples(client, "ragcode_llm_cost_usd_total")[(("model", HAIKU), ("region", "us-east-1"))] \
            >= cost * 0.999
        ledger = client.app.state.workers.context.runtime.spend
        assert ledger.month_spend(INSTALLATION) == pytest.approx(cost, rel=1e-6)
    assert github.errors == []


def test_over_budget_runs_fall_back_to_extractive_summaries_and_generation_stops(
    bedrock: StartStandin, tmp_path, github, keys, shop
) -> None:
    standin = bedrock({"us-east-1": RegionConfig()})
    home = tmp_path / "home"
    home.mkdir()
    spent = SqliteLedger(home / "spend.sqlite3")  # earlier this month the installation spent $5
    spent.record_spend(INSTALLATION, 5.0)
    spent.close()
    repo, remote = shop
    with TestClient(create_app(settings_for(tmp_path, github, keys, monthly_budget_usd=1.0))) as client:
        post(client, "installation", installation_payload([remote], INSTALLATION))
        wait_idle(client, timeout=120)
        [check] = github.checks_for("acme/shop")
        assert check["conclusion"] == "success"
        assert check["output"]["title"].endswith("deferred (monthly budget reached)")
        assert "0 summarized" in check["output"]["title"]
        assert "**The installation's monthly budget is reached**" in check["output"]["summary"]
        assert standin.total("requests") == 0

        ask = comment_payload(remote, INSTALLATION, "/ragcode 쿠폰 할인을 적용하는 함수를 만들어 줘", comment_id=11)
        post(client, "issue_comment", ask)
        wait_idle(client)
        reply = github.comments_on("acme/shop", 1)[-1]["body"]
        assert reply.startswith("이 설치의 이번 달 모델 사용 예산($1.00)을 모두 써서 코드 생성을 멈췄습니다.")
        assert "shop/coupons.py" in reply, "the related functions are still listed"
        assert standin.total("requests") == 0, "no generation call"

        post(client, "issue_comment", comment_payload(remote, INSTALLATION, "/ragcode search 쿠폰 할인", comment_id=12))
        wait_idle(client)
        search = github.comments_on("acme/shop", 1)[-1]["body"]
        assert "shop/coupons.py" in search and "예산" not in search

    # next month's budget (here: a higher one after a restart): the deferred summaries catch up
    with TestClient(create_app(settings_for(tmp_path, github, keys, monthly_budget_usd=10.0))) as client:
        Path(repo.working_tree_dir, "shop", "notes.py").write_text("X = 1\n")
        repo.index.add(["shop/notes.py"])
        after = repo.index.commit("notes").hexsha
        before = repo.head.commit.parents[0].hexsha
        post(client, "push", push_payload(remote, INSTALLATION, "main", before, after))
        wait_idle(client, timeout=120)
        check = [run for run in github.checks_for("acme/shop") if run["head_sha"] == after][-1]
        assert "budget" not in check["output"]["title"] and standin.total("ok") > 1
        ledger = client.app.state.workers.context.runtime.spend
        assert ledger.month_spend(INSTALLATION) > 5.0, "the ledger survived the restart and kept counting"

        post(client, "issue_comment", comment_payload(remote, INSTALLATION, "/ragcode 쿠폰 함수를 만들어 줘",
                                                      comment_id=13))
        wait_idle(client)
        reply = github.comments_on("acme/shop", 1)[-1]["body"]
        assert "예산" not in reply and "def generated():" in reply
    assert github.errors == []
