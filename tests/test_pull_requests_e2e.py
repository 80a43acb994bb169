"""Pull request overlays, related functions and grounded replies end to end: a real ``ragcode serve`` fed signed
deliveries (the real ``pull_request`` payloads) against the GitHub stand-in, with the text model and embedder on
the Bedrock or OpenAI-compatible stand-in (both count summary requests and record prompts) and the store embedded
or on the OpenSearch stand-in (which checks every request against the API specification).

The line: a pull request is opened and its overlay indexed (only its changed functions summarized); ``/ragcode``
on it answers from its head (permalinks at the head commit, the head's code in the prompt, callers and callees
listed, the answer's invented names marked); a synchronize refreshes the overlay; closing it drops it; a pull
request from a fork is refused until the repository's configuration allows forks.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import httpx
import pytest

from tests.bedrock_standin import BedrockStandin, RegionConfig
from tests.github_standin import (
    comment_payload,
    installation_payload,
    pull_request_payload,
    push_payload,
)
from tests.openai_standin import API_KEY, EMBED_MODEL, MODEL, OpenAIStandin
from tests.opensearch_standin import StandIn, serve
from tests.processes import Server, app_settings, clean_environment, commit_files, ragcode_json
from tests.test_overlay import CART, LEGACY, PRICING, PRICING_PR, UTIL

pytestmark = pytest.mark.slow

INSTALLATION = 88
LINES = [("local", "bedrock"), ("opensearch", "openai")]  # (store, text model and embedder)
ANSWER = ("Use `apply_bulk_discount()` from `shop/pricing.py`; `cart_total` 함수도 참고하세요. "
          "`apply_loyalty_points(cart)` in `shop/loyalty.py` does the rest.\n\n"
          "```python\nfrom shop.pricing import apply_coupon, apply_member_price\n\n"
          "def loyal_total(items):\n    return apply_member_price(apply_coupon(cart_total(items, 0), 0.1))\n```\n")


@dataclass
class Models:
    """The stand-ins of one line: its text model and embedder, and its store."""

    kind: str
    bedrock: BedrockStandin | None
    openai: OpenAIStandin | None

    def summaries(self) -> Counter[str]:
        if self.bedrock is not None:
            return Counter(self.bedrock.summarized())
        assert self.openai is not None
        return self.openai.summaries()

    @property
    def prompts(self) -> list[str]:
        standin = self.bedrock or self.openai
        assert standin is not None
        return standin.prompts

    def answer_with(self, text: str) -> None:
        standin = self.bedrock or self.openai
        assert standin is not None
        standin.answer = text


@pytest.fixture(params=LINES, ids=lambda line: "-".join(line))
def line(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Models, StandIn]]:
    """The backend settings of a line, its model stand-ins and the OpenSearch stand-in."""
    store, provider = request.param
    opensearch = StandIn()
    with BedrockStandin({"us-east-1": RegionConfig(latency=0.0)}) as bedrock, serve(opensearch) as url:
        openai = OpenAIStandin(dimension=64)
        env = {"RAGCODE_STORE": store, "RAGCODE_LLM": provider, "RAGCODE_EMBEDDER": provider,
               "RAGCODE_SUMMARY_LANG": "en"}
        if store == "opensearch":
            env |= {"OPENSEARCH_URL": url, "RAGCODE_OPENSEARCH_INDEX_PREFIX": "e2e-pulls"}
        if provider == "bedrock":
            env |= {"RAGCODE_BEDROCK_REGIONS": "us-east-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url,
                    "AWS_ACCESS_KEY_ID": "AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY": "standin-secret",
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
        else:
            env |= {"RAGCODE_OPENAI_BASE_URL": openai.url, "RAGCODE_OPENAI_API_KEY": API_KEY,
                    "RAGCODE_OPENAI_MODEL": MODEL, "RAGCODE_OPENAI_EMBED_MODEL": EMBED_MODEL}
        try:
            yield env, Models(provider, bedrock if provider == "bedrock" else None,
                              openai if provider == "openai" else None), opensearch
        finally:
            openai.close()
        assert bedrock.errors == [] and openai.errors == [], "requests the model services would refuse"
        assert opensearch.problems == [], "requests or answers off the OpenSearch API specification"


def test_pull_requests_end_to_end(tmp_path, github, keys, line) -> None:
    env, models, _ = line
    shop = git.Repo.init(tmp_path / "shop", initial_branch="main")
    base = commit_files(shop, {"shop/pricing.py": PRICING, "shop/cart.py": CART, "shop/legacy.py": LEGACY,
                               "shop/util.py": UTIL}, "shop")
    shop.git.checkout("-b", "bulk")
    shop.git.mv("shop/util.py", "shop/text.py")
    head = commit_files(shop, {"shop/pricing.py": PRICING_PR, "shop/legacy.py": None}, "bulk discounts")
    shop.git.checkout("main")
    remote = github.add_repo("acme/shop", f"file://{tmp_path / 'shop'}", octocat="write")
    home = tmp_path / "home"
    app_env = clean_environment(RAGCODE_HOME=str(home), **env, **app_settings(github, keys[0]),
                                RAGCODE_JOB_MAX_ATTEMPTS="1")
    server = Server(app_env, tmp_path / "serve.log", tmp_path)
    try:
        server.start()
        assert server.deliver("installation", installation_payload([remote], INSTALLATION)).status_code == 202
        server.wait_idle()
        seen = models.summaries()

        def summarized() -> Counter[str]:
            nonlocal seen
            now = models.summaries()
            fresh, seen = now - seen, now
            return fresh

        def ask(text: str, comment_id: int, number: int = 7) -> str:
            payload = comment_payload(remote, INSTALLATION, text, issue=number, pull_request=True,
                                      comment_id=comment_id)
            assert server.deliver("issue_comment", payload).status_code == 202
            server.wait_idle()
            return str(github.comments_on("acme/shop", number)[-1]["body"])

        # opened: the overlay is indexed, and only the pull request's changed functions are summarized
        pull = github.open_pull(remote, 7, head, head_ref="bulk")
        assert server.deliver("pull_request", pull_request_payload(remote, INSTALLATION, "opened", pull)).status_code == 202
        server.wait_idle()
        assert summarized() == Counter(["apply_coupon", "apply_bulk_discount"])
        status = ragcode_json("status", "--json", env=app_env, cwd=tmp_path)
        [widgets] = status["repositories"]
        assert widgets["branches"]["main"]["commit"] == base and widgets["pull_requests"]["7"]["commit"] == head

        # /ragcode on the pull request: the head's code, permalinks at the head, related functions, grounding
        models.answer_with(ANSWER)
        prompts = len(models.prompts)
        reply = ask("/ragcode a cart total with the coupon for loyal customers", 801)
        assert len(models.prompts) == prompts + 1
        prompt = models.prompts[-1]
        assert "rate = min(max(rate, 0.0), 1.0)" in prompt and "Take five percent off" not in prompt
        assert "Related functions (called by or calling the functions above):" in prompt
        assert re.search(rf"\(https://github\.example/acme/shop/blob/{head}/shop/pricing\.py#L\d+-L\d+\)", reply)
        assert "#### Related functions (calls)" in reply
        assert "`apply_loyalty_points(cart)` *\\(not found in this repository\\)*" in reply
        assert "`shop/loyalty.py` *\\(not found in this repository\\)*" in reply
        assert "`apply_bulk_discount()` *" not in reply and "`cart_total` 함수" in reply
        assert "Not found in this repository: `shop/loyalty.py`, `apply_loyalty_points`, `apply_member_price`." in reply
        assert "from shop.pricing import apply_coupon, apply_member_price" in reply, "code is left as it was"
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
        assert re.search(r'ragcode_ungrounded_names_total\{kind="function"\} 2\.0', metrics), metrics[-2000:]
        assert re.search(r'ragcode_ungrounded_names_total\{kind="path"\} 1\.0', metrics)

        # synchronize: only the new change is summarized; answers follow the new head
        shop.git.checkout("bulk")
        second = commit_files(shop, {"shop/pricing.py": PRICING_PR.replace("(1 + rate), 2)", "(1 + rate), 3)")},
                              "tax to the tenth of a cent")
        shop.git.checkout("main")
        pull = github.open_pull(remote, 7, second, head_ref="bulk")
        synchronize = pull_request_payload(remote, INSTALLATION, "synchronize", pull, before=head)
        assert server.deliver("pull_request", synchronize).status_code == 202
        server.wait_idle()
        assert summarized() == Counter(["add_tax"])
        models.answer_with("")
        reply = ask("/ragcode search add value added tax to a price", 802)
        assert f"/blob/{second}/shop/pricing.py#L10-L12" in reply and head not in reply

        # closed (merged or not): the overlay is dropped
        github.close_pull(remote, 7, merged=True)
        assert server.deliver("pull_request", pull_request_payload(remote, INSTALLATION, "closed", pull)).status_code == 202
        server.wait_idle()
        [widgets] = ragcode_json("status", "--json", env=app_env, cwd=tmp_path)["repositories"]
        assert widgets["pull_requests"] == {} and list(widgets["branches"]) == ["main"]

        # a fork's pull request: refused by default, indexed (read-only, through refs/pull/9/head) once allowed
        shop.git.checkout("-b", "forked", base)
        forked = commit_files(shop, {"shop/pricing.py": PRICING_PR}, "bulk discounts, from a fork")
        shop.git.checkout("main")
        shop.git.branch("-D", "forked")  # the branch lives in the fork
        fork = github.open_pull(remote, 9, forked, head_ref="bulk", fork=True)
        assert server.deliver("pull_request", pull_request_payload(remote, INSTALLATION, "opened", fork)).status_code == 202
        server.wait_idle()
        assert summarized() == Counter()
        reply = ask("/ragcode search give a bulk discount when the quantity is ten or more", 901, number=9)
        assert "comes from a fork" in reply and forked not in reply
        allowed = commit_files(shop, {".github/ragcode.yml": "pull_requests_from_forks: true\n"}, "allow forks")
        assert server.deliver("push", push_payload(remote, INSTALLATION, "main", base, allowed)).status_code == 202
        server.wait_idle()
        summarized()  # the configuration file itself
        reopened = pull_request_payload(remote, INSTALLATION, "reopened", fork)
        assert server.deliver("pull_request", reopened).status_code == 202
        server.wait_idle()
        assert summarized() == Counter(), "the same code as pull request 7's: its summaries come from the cache"
        reply = ask("/ragcode search give a bulk discount when the quantity is ten or more", 902, number=9)
        assert f"/blob/{forked}/shop/pricing.py#L20-L22" in reply and "comes from a fork" not in reply
    finally:
        server.stop()
    assert github.errors == []
    assert github.recorded("GET", r"/repos/acme/shop/pulls/7") and github.recorded("GET", r"/repos/acme/shop/pulls/9")
    records = [json.loads(text) for text in server.log.read_text().splitlines()]
    assert [record for record in records if record["level"] in ("WARNING", "ERROR", "CRITICAL")] == []
