"""Bedrock provider against the stand-in Bedrock Runtime (real HTTP on 127.0.0.1, boto3, SigV4 regions)."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY

from bot.config import ConfigError, Settings, load_settings
from bot.documents import Document, Hit, Repository, Unit
from bot.embed import embedder_spec, make_embedder
from bot.embed.bedrock import BedrockEmbedder, CohereEmbedder
from bot.llm import text_model_name
from bot.llm.bedrock import BedrockTextModel
from tests.bedrock_standin import (
    INVALID_MODEL,
    RegionConfig,
    cohere_vector,
    standin_summary,
    standin_vector,
)
from tests.conftest import StartStandin

HANGUL = re.compile(r"[가-힣]")


def settings(regions: dict[str, RegionConfig], **overrides: object) -> Settings:
    values: dict[str, object] = {"llm": "bedrock", "embedder": "bedrock", "bedrock_regions": tuple(regions),
                                 "bedrock_cooldown": 0.5}
    values.update(overrides)
    return Settings(**values)


def units(count: int, prefix: str = "handler") -> list[Unit]:
    return [Unit(f"pkg/mod_{i % 7}.py", "python", "function", f"{prefix}_{i}", 1, 2,
                 f"def {prefix}_{i}(event):\n    return event[{i}]\n") for i in range(count)]


def lost(result_summaries: dict[str, str], work: list[Unit], korean: bool = True) -> list[str]:
    """Units whose summary is missing or belongs to another function."""
    return [u.name for u in work if result_summaries.get(u.hash) != standin_summary(u.name, korean)]


def test_boto3_reaches_the_standin_per_region_and_requests_validate(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "ap-northeast-2": RegionConfig()}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions))
    work = units(24)
    result = model.summarize(work, "ko")
    assert lost(result.summaries, work) == [] and result.failed == {}
    assert model.name == "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0"
    # regions come from the SigV4 credential scope: both got work, through the one endpoint URL
    assert standin.stats["us-east-1"].ok > 0 and standin.stats["ap-northeast-2"].ok > 0
    assert standin.total("requests") == 24


def test_one_call_per_distinct_function_and_progress_counts_units(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions))
    work = units(30)
    # the same function at another path is the same summary (summaries never name the path)
    moved = [Unit("other/copy.py", "python", "function", work[i].name, 5, 6, work[i].code) for i in range(5)]
    everything = work + moved + work[:3]
    done: list[int] = []
    result = model.summarize(everything, "en", progress=done.append)
    assert standin.total("requests") == 30  # 38 units, 30 distinct functions
    assert sum(done) == len(everything)
    assert len(result.summaries) == 30 and lost(result.summaries, work, korean=False) == []
    assert sorted(standin.summarized()) == sorted(u.name for u in work)


def test_korean_and_english_summaries_round_trip(bedrock: StartStandin) -> None:
    regions = {"eu-central-1": RegionConfig()}
    bedrock(regions)
    model = BedrockTextModel(settings(regions))
    work = units(3, "parse")
    korean = model.summarize(work, "ko").summaries
    english = model.summarize(work, "en").summaries
    for unit in work:
        assert korean[unit.hash] == standin_summary(unit.name, korean=True)  # preamble and tags removed
        assert HANGUL.search(korean[unit.hash])
        assert english[unit.hash] == standin_summary(unit.name, korean=False)
        assert not HANGUL.search(english[unit.hash])


def test_throttled_region_sheds_load(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(latency=0.02, limit=2), "us-west-2": RegionConfig(latency=0.02),
               "eu-west-1": RegionConfig(latency=0.02)}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions, bedrock_concurrency=8))
    work = units(150)
    result = model.summarize(work, "ko")
    assert lost(result.summaries, work) == [] and result.failed == {}
    throttled, others = standin.stats["us-east-1"], [standin.stats["us-west-2"], standin.stats["eu-west-1"]]
    assert throttled.throttled > 0
    assert all(throttled.ok < other.ok for other in others)
    assert throttled.max_inflight <= 2
    usage = model.usage()
    assert usage["us-east-1"]["throttles"] == throttled.throttled  # each 429 reached us once: no botocore retry
    assert throttled.throttled < throttled.ok  # AIMD backs off instead of hammering the region


def test_dead_region_fails_over_and_nothing_is_lost(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(down=True), "us-west-2": RegionConfig(), "eu-west-1": RegionConfig()}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions, bedrock_cooldown=30.0))
    work = units(80)
    result = model.summarize(work, "ko")
    assert lost(result.summaries, work) == [] and result.failed == {}
    dead = standin.stats["us-east-1"]
    assert 1 <= dead.requests <= 8 and dead.unavailable == dead.requests
    assert model.usage()["us-east-1"]["errors"] == dead.requests
    assert standin.stats["us-west-2"].ok + standin.stats["eu-west-1"].ok == 80


def test_failure_after_bounded_attempts_is_reported_per_unit(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(down=True), "us-west-2": RegionConfig(down=True)}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions, bedrock_max_attempts=3, bedrock_cooldown=0.0))
    work = units(4)
    result = model.summarize(work, "ko")
    assert result.summaries == {}
    assert set(result.failed) == {u.hash for u in work}
    for error in result.failed.values():
        assert "ServiceUnavailableException" in error and "after 3 attempts" in error
    assert standin.total("requests") == 4 * 3


def test_rejected_unit_is_reported_and_the_others_kept(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions, reject_names={"handler_3"})
    model = BedrockTextModel(settings(regions))
    work = units(10)
    result = model.summarize(work, "en")
    poison = work[3]
    assert list(result.failed) == [poison.hash]
    assert "ValidationException: Input is too long" in result.failed[poison.hash]
    assert lost(result.summaries, [u for u in work if u is not poison], korean=False) == []
    assert standin.total("rejected") == 2  # tried once in each region, not max_attempts times


def test_invalid_model_id_gets_the_recorded_error(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig()}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions, bedrock_model=INVALID_MODEL))
    result = model.summarize(units(2), "ko")
    assert len(result.failed) == 2
    assert all("The provided model identifier is invalid." in error for error in result.failed.values())
    assert standin.total("requests") == 2


def test_generate_answers_from_this_repository_only(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions)
    model = BedrockTextModel(settings(regions))

    def hit(repo: int, name: str) -> Hit:
        doc = Document(id=name, repo_id=repo, branch="main", path="app/x.py", name=name, kind="function",
                       language="python", start_line=1, end_line=2, code=f"def {name}():\n    pass\n",
                       content_hash=name, summary=f"{name} does things")
        return Hit(doc, 0.9)

    hits = [hit(101, "load_config"), hit(202, "steal"), hit(101, "save_config")]
    answer = model.generate("설정을 다시 읽는 함수를 만들어 주세요", hits, "ko", Repository(101, "acme/app", 1))
    assert answer.llm == model.name and answer.generated
    assert answer.markdown.startswith("참고한 함수: load_config, save_config")
    assert "steal" not in answer.markdown
    assert "```python\ndef generated():" in answer.markdown
    english = model.generate("write a reload function", hits[:1], "en", Repository(101, "acme/app", 1))
    assert english.markdown.startswith("Functions used: load_config")
    usage = model.usage()
    assert sum(u["input_tokens"] for u in usage.values()) == standin.total("input_tokens")
    assert sum(u["output_tokens"] for u in usage.values()) == standin.total("output_tokens")


def test_usage_is_counted_in_prometheus_metrics(bedrock: StartStandin) -> None:
    regions = {"sa-east-1": RegionConfig(), "ca-central-1": RegionConfig(down=True)}
    standin = bedrock(regions)

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_ok = sample("ragcode_llm_calls_total", {"region": "sa-east-1", "outcome": "ok"})
    before_down = sample("ragcode_llm_calls_total", {"region": "ca-central-1", "outcome": "unavailable"})
    model_id = "anthropic.claude-3-5-haiku-20241022-v1:0"
    tokens_in = {"region": "sa-east-1", "model": model_id, "direction": "input"}
    tokens_out = tokens_in | {"direction": "output"}
    cost = {"region": "sa-east-1", "model": model_id}
    before_tokens, before_out = sample("ragcode_llm_tokens_total", tokens_in), sample("ragcode_llm_tokens_total", tokens_out)
    before_cost = sample("ragcode_llm_cost_usd_total", cost)
    before_latency = sample("ragcode_llm_call_seconds_count", {"region": "sa-east-1"})
    model = BedrockTextModel(settings(regions, bedrock_cooldown=30.0))
    model.summarize(units(12), "ko")
    usage = model.usage()
    assert sample("ragcode_llm_calls_total", {"region": "sa-east-1", "outcome": "ok"}) - before_ok == 12
    assert sample("ragcode_llm_calls_total", {"region": "ca-central-1", "outcome": "unavailable"}) - before_down \
        == usage["ca-central-1"]["errors"] >= 1
    assert sample("ragcode_llm_tokens_total", tokens_in) - before_tokens \
        == usage["sa-east-1"]["input_tokens"] == standin.stats["sa-east-1"].input_tokens
    assert sample("ragcode_llm_tokens_total", tokens_out) - before_out == standin.stats["sa-east-1"].output_tokens
    # Claude 3.5 Haiku: $0.0008 per 1,000 input tokens and $0.004 per 1,000 output tokens
    expected = (standin.stats["sa-east-1"].input_tokens * 0.0008 + standin.stats["sa-east-1"].output_tokens * 0.004) / 1000
    assert sample("ragcode_llm_cost_usd_total", cost) - before_cost == pytest.approx(expected)
    assert sample("ragcode_llm_call_seconds_count", {"region": "sa-east-1"}) - before_latency == 12
    assert usage["sa-east-1"]["seconds"] > 0


def test_titan_embeddings_are_normalized_at_the_configured_dimension(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions)
    embedder = BedrockEmbedder(settings(regions, bedrock_embed_dimension=256))
    assert embedder.name == "bedrock:amazon.titan-embed-text-v2:0:256" and embedder.dimension == 256
    texts = ["세션에 어댑터를 등록합니다", "closes the pool", "세션에 어댑터를 등록합니다", "", "reads the config"]
    vectors = embedder.embed_documents(texts)
    assert vectors.shape == (5, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 2, 4]], axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2]) and not vectors[3].any()
    expected = standin_vector("closes the pool", 256)
    assert np.allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-6)
    assert standin.total("requests") == 3  # one text per call, duplicates and blanks not sent
    query = embedder.embed_query("reads the config")
    assert query.shape == (256,) and np.allclose(query, vectors[4])
    assert sum(u["calls"] for u in embedder.usage().values()) == 4


def test_titan_input_is_cut_to_its_window_whatever_the_script(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig()}
    standin = bedrock(regions)
    embedder = BedrockEmbedder(settings(regions))
    hostile = "세션에 어댑터를 등록합니다 " * 10_000  # 140,000 characters, 3 UTF-8 bytes each for the Hangul
    vector = embedder.embed_documents([hostile])[0]
    cut = hostile.encode("utf-8")[:8_000].decode("utf-8", "ignore")
    expected = standin_vector(cut, 1024)
    assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)
    assert standin.total("rejected") == 0


def test_embedding_failure_raises_instead_of_returning_partial_vectors(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(down=True)}
    bedrock(regions)
    embedder = BedrockEmbedder(settings(regions, bedrock_max_attempts=2, bedrock_cooldown=0.0))
    with pytest.raises(RuntimeError, match="2 of 2 texts could not be embedded"):
        embedder.embed_documents(["a", "b"])


COHERE = "cohere.embed-multilingual-v3"
KOREAN = ["장바구니 총액을 계산합니다", "쿠폰 할인을 적용하는 함수", "세션에 어댑터를 등록합니다", "주문을 배송 대기열에 넣는다"]


def korean_and_english(count: int) -> list[str]:
    """Distinct texts, every other one Korean."""
    return [f"{KOREAN[i % 4]} {i}번" if i % 2 else f"handler_{i} returns the event's field {i}" for i in range(count)]


def test_cohere_is_chosen_by_its_model_id_and_named_like_the_spec(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig()}
    bedrock(regions)
    configured = settings(regions, bedrock_embed_model=COHERE)
    embedder = make_embedder(configured)
    assert isinstance(embedder, CohereEmbedder) and embedder.dimension == 1024
    assert embedder.name == embedder_spec(configured).name == "bedrock:cohere.embed-multilingual-v3:1024"
    titan = make_embedder(settings(regions))
    assert isinstance(titan, BedrockEmbedder) and titan.name == embedder_spec(settings(regions)).name
    assert BedrockTextModel(configured).name == text_model_name(configured)
    assert isinstance(make_embedder(settings(regions, bedrock_embed_model=f"us.{COHERE}")), CohereEmbedder)
    with pytest.raises(ConfigError, match="RAGCODE_BEDROCK_EMBED_DIMENSION: Cohere"):
        load_settings({"RAGCODE_EMBEDDER": "bedrock", "RAGCODE_BEDROCK_EMBED_MODEL": COHERE,
                       "RAGCODE_BEDROCK_EMBED_DIMENSION": "256"})


def test_cohere_embeds_korean_in_batches_of_at_most_96_in_order(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE))
    texts = korean_and_english(250)
    vectors = embedder.embed_documents([*texts, texts[7], ""])
    assert vectors.shape == (252, 1024) and vectors.dtype == np.float32
    for row, text in enumerate(texts):
        assert np.allclose(vectors[row], cohere_vector(text, "search_document"), atol=1e-5), text
    assert np.array_equal(vectors[250], vectors[7]) and not vectors[251].any()  # duplicates once, blanks not sent
    batches = [size for stats in standin.stats.values() for size in stats.batches]
    assert sorted(batches) == [58, 96, 96] and standin.total("requests") == 3
    assert sorted(text for stats in standin.stats.values() for text in stats.embedded) == sorted(texts)
    usage = embedder.usage()
    assert sum(u["calls"] for u in usage.values()) == 3
    assert sum(u["input_tokens"] for u in usage.values()) == standin.total("input_tokens") > 0


def test_cohere_queries_are_embedded_as_search_queries(bedrock: StartStandin) -> None:
    regions = {"ap-northeast-2": RegionConfig()}
    bedrock(regions)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE))
    query = embedder.embed_query("쿠폰 할인을 적용하는 함수")
    document = embedder.embed_documents(["쿠폰 할인을 적용하는 함수"])[0]
    assert query.shape == (1024,) and np.allclose(query, cohere_vector("쿠폰 할인을 적용하는 함수", "search_query"),
                                                  atol=1e-5)
    assert not np.allclose(query, document) and float(query @ document) > 0.98


def test_cohere_inputs_are_cut_to_2048_characters_and_truncated_at_the_end(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig()}
    standin = bedrock(regions)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE))
    hostile = "세션에 어댑터를 등록합니다 " * 10_000  # 140,000 characters, thousands of tokens
    longer = hostile + "끝"
    vectors = embedder.embed_documents([hostile, longer[:2_048] + "다른 끝"])
    assert standin.total("rejected") == 0 and standin.total("requests") == 1
    assert [len(text) for text in standin.stats["us-east-1"].embedded] == [2_048, 2_048]
    assert np.array_equal(vectors[0], vectors[1])  # the same first 2,048 characters, the same vector
    assert standin.total("input_tokens") == 2 * 512  # the model embedded (and billed) its 512-token window


def test_cohere_throttling_is_retried_in_another_region_and_order_kept(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(latency=0.05, limit=1), "eu-central-1": RegionConfig(latency=0.05)}
    standin = bedrock(regions)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE, bedrock_concurrency=4))
    texts = korean_and_english(96 * 10)
    vectors = embedder.embed_documents(texts)
    assert standin.stats["us-east-1"].throttled > 0
    assert standin.stats["eu-central-1"].ok > standin.stats["us-east-1"].ok
    assert standin.total("ok") == 10 and all(size == 96 for stats in standin.stats.values() for size in stats.batches)
    for row in (0, 95, 96, 500, 959):
        assert np.allclose(vectors[row], cohere_vector(texts[row], "search_document"), atol=1e-5)
    assert embedder.usage()["us-east-1"]["throttles"] == standin.stats["us-east-1"].throttled


def test_cohere_failure_raises_instead_of_returning_partial_vectors(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(down=True)}
    bedrock(regions)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE, bedrock_max_attempts=2,
                                       bedrock_cooldown=0.0))
    with pytest.raises(RuntimeError, match="1 of 1 embedding batches failed"):
        embedder.embed_documents(["a", "b"])


def test_cohere_answers_of_the_wrong_shape_are_rejected_not_misaligned(bedrock: StartStandin) -> None:
    regions = {"us-east-1": RegionConfig(), "us-west-2": RegionConfig()}
    standin = bedrock(regions, short_answers=True)
    embedder = CohereEmbedder(settings(regions, bedrock_embed_model=COHERE))
    with pytest.raises(RuntimeError, match=r"asked for 3 embeddings of 1024, got shape \(2, 1024\)"):
        embedder.embed_documents(["a", "b", "c"])
    assert standin.total("requests") == 2  # a rejected answer is tried once in each region, then reported


def test_standin_checks_cohere_requests_like_the_service(bedrock: StartStandin) -> None:
    standin = bedrock({"us-east-1": RegionConfig()})
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, "
                               "SignedHeaders=host, Signature=0", "Content-Type": "application/json"}
    url = f"{standin.url}/model/{COHERE}/invoke"
    ok = httpx.post(url, json={"texts": ["Hello, world!"], "input_type": "search_query"}, headers=signed)
    assert ok.status_code == 200 and ok.json()["response_type"] == "embeddings_floats"
    assert ok.json()["texts"] == ["hello, world!"] and ok.headers["x-amzn-bedrock-input-token-count"] == "4"
    by_type = httpx.post(url, json={"texts": ["a"], "input_type": "search_document", "embedding_types": ["float"]},
                         headers=signed)
    assert len(by_type.json()["embeddings"]["float"][0]) == 1024
    for body in ({"texts": ["x"] * 97, "input_type": "search_document"},
                 {"texts": ["x" * 2_049], "input_type": "search_document"},
                 {"texts": ["x"]},
                 {"texts": ["x"], "input_type": "search_document", "truncate": "MIDDLE"},
                 {"texts": ["x"], "input_type": "search_document", "dimensions": 256}):
        assert httpx.post(url, json=body, headers=signed).status_code == 400, body
    long_text = {"texts": ["a, " * 600], "input_type": "search_document"}  # 1,200 tokens; truncate NONE by default
    assert httpx.post(url, json=long_text, headers=signed).status_code == 400
    assert httpx.post(url, json=long_text | {"truncate": "END"}, headers=signed).status_code == 200
    standin.errors.clear()  # these were deliberate


def test_standin_validates_requests_against_the_service_model(bedrock: StartStandin) -> None:
    standin = bedrock({"us-east-1": RegionConfig()})
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, "
                               "SignedHeaders=host, Signature=0"}
    bad = httpx.post(f"{standin.url}/model/m/converse", json={"messages": [{"role": "robot"}]}, headers=signed)
    assert bad.status_code == 400 and bad.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert "messages[0]" in bad.json()["message"]
    unsigned = httpx.post(f"{standin.url}/model/m/converse", json={"messages": []})
    assert unsigned.status_code == 403
    standin.errors.clear()  # these were deliberate


def test_missing_credentials_fail_at_construction(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="AWS credentials"):
        BedrockTextModel(settings({"us-east-1": RegionConfig()}))
