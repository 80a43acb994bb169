"""Cost: token estimates, prices, metering, dry runs and the monthly budget, against the Bedrock stand-in."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.config import ConfigError, Settings, load_settings
from bot.documents import Repository
from bot.indexer.dryrun import dry_run
from bot.indexer.pipeline import index_branch
from bot.llm.prices import BUILT_IN, PRICES_AS_OF, Price, load_prices
from bot.llm.scheduler import RegionScheduler, Reply
from bot.llm.tokens import estimate_chat_tokens, estimate_tokens
from bot.llm.usage import metering
from bot.runtime import Runtime
from bot.spend import SqliteSpendLedger, month_of, monthly_budget
from tests.bedrock_standin import CASSETTES, RegionConfig, cohere_vector, count_tokens
from tests.conftest import GitRepo, StartStandin

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "korean_corpus"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
COHERE = "cohere.embed-multilingual-v3"
TITAN = "amazon.titan-embed-text-v2:0"
SHOP = Repository.local("acme/shop")


def corpus_repo(make_repo) -> GitRepo:
    """A real repository: the Korean corpus of the benchmarks (Python, Go and JavaScript with Korean comments)."""
    repo = make_repo("shop")
    for path in sorted(CORPUS.rglob("*.*")):
        repo.write(str(path.relative_to(CORPUS)), path.read_text(encoding="utf-8"))
    repo.commit("corpus")
    return repo


def bedrock_settings(home: Path, regions: dict[str, RegionConfig], **overrides: object) -> Settings:
    values: dict[str, object] = {"home": home, "llm": "bedrock", "embedder": "bedrock",
                                 "bedrock_regions": tuple(regions), "bedrock_cooldown": 0.5}
    return Settings(**(values | overrides))


def counted(rows: list[dict], model: str, key: str) -> int:
    return sum(row[key] for row in rows if row["model"] == model)


# token estimates


def test_estimates_are_close_to_what_real_bedrock_responses_reported() -> None:
    """The recorded real calls (Nova Micro, Claude Sonnet 4.5, Claude 3.7 Sonnet) report their token usage."""
    checked = 0
    for path in sorted((CASSETTES / "models" / "cassettes" / "test_bedrock").glob("*.yaml")):
        for interaction in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
            body, answer = interaction["request"]["body"], interaction["response"].get("parsed_body")
            if not isinstance(answer, dict) or "usage" not in answer or "toolConfig" in str(body):
                continue
            request = json.loads(body)
            output = "".join(block.get("text", "") for block in answer["output"]["message"]["content"])
            assert estimate_tokens(output) == pytest.approx(answer["usage"]["outputTokens"], rel=0.15), path.name
            texts = [b["text"] for b in request.get("system", [])] + [
                b["text"] for m in request["messages"] for b in m["content"]]
            if "nova" in interaction["request"]["uri"]:  # Nova frames its messages with no extra tokens
                assert sum(map(estimate_tokens, texts)) == pytest.approx(answer["usage"]["inputTokens"], rel=0.1)
            else:  # Claude adds a few framing tokens
                assert estimate_chat_tokens(texts[0], "".join(texts[1:])) == pytest.approx(
                    answer["usage"]["inputTokens"], rel=0.1)
            checked += 1
    assert checked == 3


def test_korean_takes_more_tokens_than_its_characters_and_code_fewer() -> None:
    korean = "장바구니에 담긴 상품의 총액을 계산하고 쿠폰 할인을 적용합니다"
    code = "def total(cart):\n    return sum(item.price * item.quantity for item in cart.items)\n"
    assert estimate_tokens(korean) > len(korean.replace(" ", ""))
    assert len(code) / 5 < estimate_tokens(code) < len(code) / 2.5
    assert estimate_tokens("") == 0 and estimate_tokens("😀" * 10) == 10
    # the stand-in counts on its own rules, not with the estimator: both agree within 10% on real code
    text = (CORPUS / "shop" / "coupons.py").read_text(encoding="utf-8")
    assert estimate_tokens(text) == pytest.approx(count_tokens(text), rel=0.1)


# prices


def test_prices_cover_the_defaults_and_profiles_and_a_file_overrides_them(tmp_path: Path) -> None:
    table = load_prices()
    assert table.as_of == PRICES_AS_OF and table.price(HAIKU) == Price(0.0008, 0.004)
    assert table.price(f"us.{HAIKU}") == table.price(f"global.{HAIKU}") == table.price(HAIKU)
    assert table.price(f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}") == table.price(HAIKU)
    assert table.price(COHERE) == Price(0.0001) and table.price(TITAN) == Price(0.00002)
    assert table.price("qwen2.5-coder:7b") is None and table.price("") is None
    override = tmp_path / "prices.toml"
    override.write_text(f'as_of = "2026-01-31"\nsource = "our contract"\n[models."{HAIKU}"]\ninput_per_1k = 0.0004\n'
                        'output_per_1k = 0.002\n[models."qwen2.5-coder:7b"]\ninput_per_1k = 0.0\n'
                        'output_per_1k = 0.0\n')
    custom = load_prices(str(override))
    assert custom.as_of == "2026-01-31" and custom.source == "our contract"
    assert custom.price(HAIKU) == Price(0.0004, 0.002) and custom.price("qwen2.5-coder:7b") == Price(0.0, 0.0)
    assert custom.price(TITAN) == BUILT_IN[TITAN]
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"as_of": "2026-02-01", "models": {COHERE: {"input_per_1k": 0.00012}}}))
    assert load_prices(str(as_json)).price(COHERE) == Price(0.00012)
    assert load_settings({"RAGCODE_PRICES_FILE": str(override)}).prices_file == str(override)


@pytest.mark.parametrize("content, message", [
    ('as_of = "x"\n[models.m]\ninput_per_1k = -1\noutput_per_1k = 0\n', "at least 0"),
    ('as_of = "x"\n[models.m]\ninput_per_1k = nan\noutput_per_1k = 0\n', "at least 0"),
    ('as_of = "x"\n[models.m]\ninput_per_1k = "cheap"\noutput_per_1k = 0\n', "at least 0"),
    ('as_of = "x"\n[models.m]\ninput_per_1k = 1\ncurrency = "EUR"\n', "nothing else"),
    ('as_of = "x"\ncolour = "blue"\n', "unknown key 'colour'"),
    ('[models.m]\ninput_per_1k = 1\noutput_per_1k = 1\n', "as_of"),
    ("not = [toml", "not valid"),
    ("x" * (1 << 20) + "x", "larger than"),
], ids=["negative", "nan", "text", "extra key", "unknown key", "no date", "broken", "huge"])
def test_a_bad_prices_file_stops_the_start_naming_the_setting(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=f"RAGCODE_PRICES_FILE: .*{message}"):
        load_settings({"RAGCODE_PRICES_FILE": str(path)})
    with pytest.raises(ConfigError, match="RAGCODE_PRICES_FILE: cannot read"):
        load_settings({"RAGCODE_PRICES_FILE": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "lots"])
def test_a_bad_budget_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="RAGCODE_MONTHLY_BUDGET_USD"):
        load_settings({"RAGCODE_MONTHLY_BUDGET_USD": value})


# metering


def test_a_meter_counts_only_the_calls_of_its_own_thread() -> None:
    scheduler = RegionScheduler(["a", "b"], concurrency=4, max_attempts=2, model="m", price=Price(1.0, 2.0))
    meters = {}

    def run(name: str, items: int, tokens: int) -> None:
        with metering() as meter:
            scheduler.map(list(range(items)), lambda region, item: Reply(item, tokens, 1))
            meters[name] = meter

    threads = [threading.Thread(target=run, args=("small", 5, 10)), threading.Thread(target=run, args=("big", 40, 100))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert meters["small"].total("calls") == 5 and meters["small"].total("input_tokens") == 50
    assert meters["big"].total("calls") == 40 and meters["big"].total("input_tokens") == 4000
    assert meters["big"].total("cost_usd") == pytest.approx((4000 * 1.0 + 40 * 2.0) / 1000)
    assert {row["model"] for row in meters["big"].rows()} == {"m"}


# the dry run against the counted run


@pytest.mark.parametrize("lang, embed_model", [("ko", COHERE), ("en", TITAN)])
def test_dry_run_estimate_is_within_10_percent_of_the_tokens_the_standin_counted(
    bedrock: StartStandin, tmp_path: Path, make_repo, lang: str, embed_model: str
) -> None:
    regions = {"us-east-1": RegionConfig(), "ap-northeast-2": RegionConfig()}
    standin = bedrock(regions)
    repo = corpus_repo(make_repo)
    settings = bedrock_settings(tmp_path / "home", regions, summary_lang=lang, bedrock_embed_model=embed_model)
    head = repo.repo.head.commit.hexsha
    estimate = dry_run(settings, repo.repo, SHOP.name, None, "main", head)
    assert not (tmp_path / "home").exists(), "a dry run creates no data folder"
    assert standin.total("requests") == 0, "a dry run calls no model"

    runtime = Runtime(settings)
    try:
        report = index_branch(runtime, repo.repo, SHOP, "main", head)
    finally:
        runtime.close()
    rows = report.usage_by_model
    assert len(estimate.functions_to_summarize) == report.summaries_generated == estimate.summaries.calls
    assert counted(rows, HAIKU, "input_tokens") + counted(rows, embed_model, "input_tokens") \
        == report.input_tokens == standin.total("input_tokens")
    assert report.output_tokens == standin.total("output_tokens")
    assert estimate.summaries.input_tokens == pytest.approx(counted(rows, HAIKU, "input_tokens"), rel=0.1)
    assert estimate.summaries.output_tokens == pytest.approx(counted(rows, HAIKU, "output_tokens"), rel=0.1)
    assert estimate.input_tokens + estimate.output_tokens == pytest.approx(
        standin.total("input_tokens") + standin.total("output_tokens"), rel=0.1)
    assert estimate.cost_usd == pytest.approx(report.cost_usd, rel=0.1)
    expected_cost = (counted(rows, HAIKU, "input_tokens") * 0.0008 + counted(rows, HAIKU, "output_tokens") * 0.004
                     + counted(rows, embed_model, "input_tokens") * load_prices().price(embed_model).input_per_1k)
    assert report.cost_usd == pytest.approx(expected_cost / 1000, rel=1e-4)
    if embed_model == COHERE:  # one call per batch of 96 texts, and one for the relevance cut's reference code
        assert estimate.embeddings.calls == counted(rows, COHERE, "calls") == 2
        assert estimate.embeddings.input_tokens == pytest.approx(counted(rows, COHERE, "input_tokens"), rel=0.1)
    assert estimate.seconds > 0 and estimate.regions == 2 and estimate.concurrency == 8


def test_dry_run_command_plans_like_a_run_and_writes_nothing(bedrock: StartStandin, tmp_path: Path,
                                                             make_repo) -> None:
    regions = {"us-east-1": RegionConfig()}
    standin = bedrock(regions)
    repo = corpus_repo(make_repo)
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAGCODE_")}, "RAGCODE_HOME": str(home),
           "RAGCODE_LLM": "bedrock", "RAGCODE_EMBEDDER": "bedrock", "RAGCODE_BEDROCK_REGIONS": "us-east-1",
           "RAGCODE_BEDROCK_EMBED_MODEL": COHERE}

    def ragcode(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "index", str(repo.path), "--repo", "acme/shop", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    planned = ragcode("--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    first = json.loads(planned.stdout)
    assert first["previous_commit"] is None and first["full"] and first["summaries_generated"] > 50
    assert {"calls", "input_tokens", "output_tokens", "cost_usd", "seconds", "prices_as_of"} <= set(first)
    assert first["summaries"]["model"] == HAIKU and first["embeddings"]["model"] == COHERE
    assert "shop/coupons.py::apply_coupon" in first["functions_to_summarize"] or any(
        name.startswith("shop/coupons.py::") for name in first["functions_to_summarize"])
    readable = ragcode("--dry-run")
    assert readable.returncode == 0 and "plan only, no model called, nothing written" in readable.stdout
    assert f"prices as of {PRICES_AS_OF}" in readable.stdout and "$" in readable.stdout
    assert not home.exists() and standin.total("requests") == 0

    indexed = ragcode("--json")
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    assert report["summaries_generated"] == first["summaries_generated"]
    assert report["cost_usd"] > 0 and report["input_tokens"] == standin.total("input_tokens")
    assert {row["model"] for row in report["usage_by_model"]} == {HAIKU, COHERE}
    assert report["estimate"]["cost_usd"] == pytest.approx(first["cost_usd"], rel=1e-6)

    source = repo.path / "shop" / "coupons.py"
    source.write_text(source.read_text(encoding="utf-8").replace("return", "return  ", 1), encoding="utf-8")
    repo.commit("one function changed")
    before = {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in home.rglob("*") if path.is_file()}
    requests = standin.total("requests")
    again = json.loads(ragcode("--dry-run", "--json").stdout)
    after = {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in home.rglob("*") if path.is_file()}
    assert after == before, "a dry run writes nothing"
    assert standin.total("requests") == requests
    assert again["previous_commit"] == report["commit"] and not again["full"]
    assert again["functions_updated"] == 1 and again["summaries"]["calls"] == 1 and again["embeddings"]["calls"] == 1


# the monthly budget through the real pipeline


def test_without_budget_left_a_run_writes_extractive_summaries_and_catches_up_later(
    bedrock: StartStandin, tmp_path: Path, make_repo
) -> None:
    regions = {"us-east-1": RegionConfig()}
    standin = bedrock(regions)
    repo = corpus_repo(make_repo)
    settings = bedrock_settings(tmp_path / "home", regions, embedder="local")
    runtime = Runtime(settings)
    try:
        broke = index_branch(runtime, repo.repo, SHOP, "main", repo.repo.head.commit.hexsha, money_left=0.0)
        assert broke.budget_exhausted and broke.summaries_generated == 0
        assert broke.summaries_deferred == broke.functions_total and broke.cost_usd == 0.0
        assert standin.total("requests") == 0
        pending = runtime.store.pending(SHOP.id, "main")
        assert len(pending) == broke.functions_total
        document = runtime.store.documents(SHOP.id, "main", [pending[0].id])[0]
        assert document.summary and document.vector is not None  # searchable with its extractive summary

        one = index_branch(runtime, repo.repo, SHOP, "main", repo.repo.head.commit.hexsha, money_left=0.0025)
        assert one.budget_exhausted and 1 <= one.summaries_generated <= 3
        assert 0 < one.cost_usd <= 0.0025 * 1.1
        assert standin.total("requests") == one.summaries_generated

        rich = index_branch(runtime, repo.repo, SHOP, "main", repo.repo.head.commit.hexsha)
        assert not rich.budget_exhausted and rich.summaries_deferred == 0
        assert rich.summaries_generated == broke.functions_total - one.summaries_generated
        assert runtime.store.pending(SHOP.id, "main") == []
    finally:
        runtime.close()


def test_spending_is_kept_per_installation_and_month_across_restarts(tmp_path: Path) -> None:
    ledger = SqliteSpendLedger(tmp_path / "spend.sqlite3")
    ledger.record_spend(31, 0.25)
    ledger.record_spend(31, 0.5)
    ledger.record_spend(32, 2.0)
    for bad in (-1.0, math.nan, math.inf, 0.0):
        ledger.record_spend(31, bad)
    ledger.close()
    with sqlite3.connect(tmp_path / "spend.sqlite3") as db:  # last month's spending does not count this month
        db.execute("INSERT INTO spend VALUES (31, ?, 100.0)", (month_of(0),))
    reopened = SqliteSpendLedger(tmp_path / "spend.sqlite3")
    assert reopened.month_spend(31) == pytest.approx(0.75) and reopened.month_spend(32) == 2.0
    assert reopened.month_spend(33) == 0.0
    settings = Settings(home=tmp_path, monthly_budget_usd=1.0)
    budget = monthly_budget(settings, reopened, 32)
    assert budget is not None and budget.exhausted and budget.left_usd == 0.0
    assert monthly_budget(settings, reopened, 31).left_usd == pytest.approx(0.25)
    assert monthly_budget(Settings(home=tmp_path), reopened, 31) is None, "no budget configured"
    assert monthly_budget(settings, reopened, 0) is None, "command-line runs have no installation"


def test_switching_from_titan_to_cohere_re_embeds_every_function(bedrock: StartStandin, tmp_path: Path,
                                                               make_repo) -> None:
    regions = {"us-east-1": RegionConfig()}
    bedrock(regions)
    repo = corpus_repo(make_repo)
    head = repo.repo.head.commit.hexsha
    titan = Runtime(bedrock_settings(tmp_path / "home", regions, llm="offline"))
    try:
        index_branch(titan, repo.repo, SHOP, "main", head)
    finally:
        titan.close()
    cohere = Runtime(bedrock_settings(tmp_path / "home", regions, llm="offline", bedrock_embed_model=COHERE))
    try:
        report = index_branch(cohere, repo.repo, SHOP, "main", head)
        assert report.full and report.embedder == f"bedrock:{COHERE}:1024"
        refs = cohere.store.refs(SHOP.id, "main")
        documents = cohere.store.documents(SHOP.id, "main", [ref.id for ref in refs])
        for document in documents:  # same dimension, yet every vector is Cohere's now
            expected = cohere_vector(f"{document.name}\n{document.summary}", "search_document")
            assert np.allclose(document.vector, expected, atol=1e-5), document.name
    finally:
        cohere.close()


def test_dry_run_of_an_index_in_an_older_format_plans_a_full_run(tmp_path: Path, make_repo) -> None:
    repo = corpus_repo(make_repo)
    index = tmp_path / "home" / "index"
    index.mkdir(parents=True)
    with sqlite3.connect(index / "ragcode.sqlite3") as db:
        db.execute("CREATE TABLE documents (id TEXT)")
        db.execute("PRAGMA user_version = 1")
    before = (index / "ragcode.sqlite3").read_bytes()
    estimate = dry_run(Settings(home=tmp_path / "home"), repo.repo, "acme/shop", None, "main",
                       repo.repo.head.commit.hexsha)
    assert estimate.full and estimate.functions_added == len(estimate.functions_to_summarize) > 50
    assert estimate.calls == 0 and estimate.cost_usd == 0.0 and estimate.embeddings.seconds > 0
    assert (index / "ragcode.sqlite3").read_bytes() == before and sorted(p.name for p in index.iterdir()) == [
        "ragcode.sqlite3"]
    shutil.rmtree(tmp_path / "home")
