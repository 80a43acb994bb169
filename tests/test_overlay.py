"""Pull request overlays, related functions and grounded answers on real git repositories, the embedded store and
the Bedrock stand-in (Claude for summaries and answers, Titan for embeddings), which records every prompt."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from bot.commands.answer import answer
from bot.commands.retrieve import retrieve
from bot.config import LimitExceeded, Settings
from bot.documents import Repository, overlay_branch
from bot.indexer import overlay as overlays
from bot.indexer.filters import IndexOptions
from bot.indexer.overlay import OverlayError, index_overlay, ready_overlay
from bot.indexer.pipeline import index_branch
from bot.runtime import Runtime
from tests.bedrock_standin import BedrockStandin, RegionConfig

SHOP = Repository(4242, "acme/shop", 9)
HTML = "https://github.example/acme/shop"
OPTIONS = IndexOptions(summary_lang="en")

PRICING = '''"""Prices, coupons and taxes."""


def apply_coupon(price, rate):
    """Apply a coupon discount rate to a price."""
    return round(price * (1 - rate), 2)


def add_tax(price, rate):
    """Add value added tax to a price."""
    return round(price * (1 + rate), 2)


def round_price(price):
    """Round a price to whole cents."""
    return round(price, 2)
'''

PRICING_PR = '''"""Prices, coupons and taxes."""


def apply_coupon(price, rate):
    """Apply a coupon discount rate to a price, the rate clamped between 0 and 1."""
    rate = min(max(rate, 0.0), 1.0)
    return round(price * (1 - rate), 2)


def add_tax(price, rate):
    """Add value added tax to a price."""
    return round(price * (1 + rate), 2)


def round_price(price):
    """Round a price to whole cents."""
    return round(price, 2)


def apply_bulk_discount(price, quantity):
    """Give a bulk discount on a price when the quantity is ten or more."""
    return apply_coupon(price, 0.1) if quantity >= 10 else price
'''

CART = '''"""The shopping cart."""
from shop.pricing import add_tax, apply_coupon


def cart_total(items, coupon_rate):
    """Sum of the cart's item prices with the coupon applied and tax added."""
    subtotal = sum(item.price * item.quantity for item in items)
    return add_tax(apply_coupon(subtotal, coupon_rate), 0.1)


class Cart:
    """Items a customer is about to buy."""

    def __init__(self):
        self.items = []

    def checkout(self, coupon_rate):
        """Charge the customer the cart total."""
        return charge_card(cart_total(self.items, coupon_rate))


def charge_card(amount):
    """Charge an amount to the customer's card."""
    return amount
'''

LEGACY = '''def old_discount(price):
    """Take five percent off a price for loyal customers (the old loyalty scheme)."""
    return price * 0.95
'''

UTIL = '''def slugify(title):
    """Turn a product title into a URL slug."""
    return "-".join(title.lower().split())
'''


@pytest.fixture
def standin(bedrock) -> BedrockStandin:
    """The Bedrock stand-in (conftest's, with boto3 pointed at it), one region without latency."""
    return bedrock({"us-east-1": RegionConfig(latency=0.0)})


@pytest.fixture
def runtime(tmp_path, standin) -> Iterator[Runtime]:
    runtime = Runtime(Settings(home=tmp_path / "home", llm="bedrock", embedder="bedrock", summary_lang="en",
                               bedrock_regions=("us-east-1",), bedrock_cooldown=0.5))
    yield runtime
    runtime.close()


@pytest.fixture
def shop(make_repo, runtime, standin):
    """The shop on main, indexed; a pull request branch that changes one function of pricing.py, adds one there,
    deletes legacy.py and renames util.py to text.py."""
    repo = make_repo("shop")
    for path, text in {"shop/pricing.py": PRICING, "shop/cart.py": CART, "shop/legacy.py": LEGACY,
                       "shop/util.py": UTIL}.items():
        repo.write(path, text)
    base = repo.commit("shop")
    index_branch(runtime, repo.repo, SHOP, "main", base, options=OPTIONS)
    repo.repo.git.checkout("-b", "bulk")
    repo.write("shop/pricing.py", PRICING_PR)
    repo.remove("shop/legacy.py")
    repo.move("shop/util.py", "shop/text.py")
    head = repo.commit("bulk discounts; the old loyalty scheme goes")
    standin.stats["us-east-1"].summarized.clear()
    return repo, base, head


def summarized(standin: BedrockStandin) -> Counter[str]:
    names = Counter(standin.summarized())
    standin.stats["us-east-1"].summarized.clear()
    return names


def test_an_overlay_summarizes_only_the_functions_the_pull_request_changed(runtime, shop, standin):
    repo, base, head = shop
    report = index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    assert report is not None and report.branch == overlay_branch(7)
    assert summarized(standin) == Counter(["apply_coupon", "apply_bulk_discount"])
    overlay = runtime.store.overlay(SHOP.id, overlay_branch(7))
    assert overlay is not None and (overlay.base, overlay.head, overlay.merge_base) == ("main", head, base)
    assert overlay.shadowed == ("shop/legacy.py", "shop/pricing.py", "shop/text.py", "shop/util.py")
    assert {ref.path for ref in runtime.store.refs(SHOP.id, overlay_branch(7))} == {"shop/pricing.py", "shop/text.py"}
    assert ready_overlay(runtime, SHOP.id, 7, head) == overlay
    assert ready_overlay(runtime, SHOP.id, 7, base) is None, "an overlay behind the pull request's head is not ready"
    assert index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS) is None
    assert summarized(standin) == Counter()
    assert [state.branch for state in runtime.store.branch_states(SHOP.id)] == ["main", overlay_branch(7)]


def test_answers_on_the_pull_request_come_from_its_head_and_the_rest_from_the_base(runtime, shop):
    repo, base, head = shop
    index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    overlay = runtime.store.overlay(SHOP.id, overlay_branch(7))

    def best(query: str, with_overlay: bool = True):
        hits = retrieve(runtime, SHOP.id, "main", query, overlay=overlay if with_overlay else None, min_score=0.0)
        return hits[0] if hits else None

    bulk = best("give a bulk discount when the quantity is ten or more")
    assert (bulk.document.name, bulk.document.branch, bulk.commit) == ("apply_bulk_discount", overlay_branch(7), head)
    coupon = best("apply a coupon discount rate to a price")
    assert coupon.document.branch == overlay_branch(7) and "min(max(rate" in coupon.document.code
    assert coupon.commit == head
    total = best("sum of the cart's item prices")
    assert (total.document.name, total.document.branch, total.commit) == ("cart_total", "main", "")
    everything = retrieve(runtime, SHOP.id, "main", "old loyalty scheme discount", overlay=overlay, min_score=0.0)
    assert "old_discount" not in {hit.document.name for hit in everything}, "the pull request deleted it"
    assert best("old loyalty scheme discount", with_overlay=False).document.name == "old_discount"
    assert {hit.document.path for hit in everything} <= {"shop/pricing.py", "shop/cart.py", "shop/text.py"}
    reply = answer(runtime, SHOP, "main", "turn a product title into a URL slug", html_url=HTML, overlay=overlay,
                   search_only=True)
    assert f"{HTML}/blob/{head}/shop/text.py#L1-L3" in reply.markdown, "the renamed file, at the head"
    assert f"pull request head `{head[:12]}`" in reply.markdown


def test_a_synchronize_refreshes_the_overlay_and_only_the_new_change_is_summarized(runtime, shop, standin):
    repo, base, head = shop
    index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    summarized(standin)
    repo.write("shop/pricing.py", PRICING_PR.replace("(1 + rate), 2)", "(1 + rate), 3)"))
    repo.write("shop/legacy.py", LEGACY)  # put back as it was on main: no longer part of the pull request
    second = repo.commit("tax to the tenth of a cent; keep the old scheme")
    index_overlay(runtime, repo.repo, SHOP, 7, "main", second, fork=False, options=OPTIONS)
    assert summarized(standin) == Counter(["add_tax"])
    overlay = runtime.store.overlay(SHOP.id, overlay_branch(7))
    assert overlay.head == second and "shop/legacy.py" not in overlay.shadowed
    hits = retrieve(runtime, SHOP.id, "main", "old loyalty scheme discount", overlay=overlay, min_score=0.0)
    assert hits[0].document.name == "old_discount" and hits[0].document.branch == "main"
    assert not any(hit.commit == head for hit in hits), "nothing links to the earlier head any more"


def test_overlays_refuse_histories_they_cannot_place_and_pull_requests_too_large(runtime, shop, make_repo, monkeypatch):
    repo, base, head = shop
    with pytest.raises(OverlayError, match="base branch release is not indexed"):
        index_overlay(runtime, repo.repo, SHOP, 7, "release", head, fork=False, options=OPTIONS)
    repo.repo.git.checkout("--orphan", "unrelated")
    repo.write("other.py", "def other():\n    return 1\n")
    unrelated = repo.commit("unrelated history")
    with pytest.raises(OverlayError, match="shares no history"):
        index_overlay(runtime, repo.repo, SHOP, 8, "main", unrelated, fork=False, options=OPTIONS)
    monkeypatch.setattr(overlays, "MAX_SHADOWED", 3)  # the limit itself, lowered: four paths change
    with pytest.raises(LimitExceeded, match="changes 4 files, more than the 3"):
        index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    assert runtime.store.branch_state(SHOP.id, overlay_branch(7)) is None


def test_the_prompt_holds_the_head_code_and_the_related_functions_and_the_reply_lists_them(runtime, shop, standin):
    repo, base, head = shop
    index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    overlay = runtime.store.overlay(SHOP.id, overlay_branch(7))
    runtime.settings = dataclasses.replace(runtime.settings, top_k=1)  # one reference: the rest is related
    reply = answer(runtime, SHOP, "main", "sum of the cart's item prices with the coupon applied", html_url=HTML,
                   overlay=overlay)
    assert [hit.document.name for hit in reply.hits] == ["cart_total"]
    related = {(hit.document.name, hit.relation, hit.related_to, hit.commit) for hit in reply.related}
    assert ("apply_coupon", "callee", "cart_total", head) in related, "the pull request's version of the callee"
    assert ("add_tax", "callee", "cart_total", head) in related
    assert ("Cart.checkout", "caller", "cart_total", "") in related
    prompt = standin.prompts[-1]
    assert "Related functions (called by or calling the functions above):" in prompt
    assert "rate = min(max(rate, 0.0), 1.0)" in prompt and "return round(price * (1 - rate), 2)" in prompt
    assert "called by cart_total" in prompt and "calls cart_total" in prompt
    assert "#### Related functions (calls)" in reply.markdown
    assert f"{HTML}/blob/{head}/shop/pricing.py#L4-L7" in reply.markdown
    assert "— `Cart.checkout` · calls `cart_total`" in reply.markdown


def test_names_the_answer_invents_are_marked_and_counted(runtime, shop, standin):
    repo, base, head = shop
    index_overlay(runtime, repo.repo, SHOP, 7, "main", head, fork=False, options=OPTIONS)
    overlay = runtime.store.overlay(SHOP.id, overlay_branch(7))
    standin.answer = (
        "Call `apply_bulk_discount()` from `shop/pricing.py`, then `apply_loyalty_points(cart)` from "
        "`shop/loyalty.py`; `old_discount()` is gone, and `Cart.checkout` charges the card.\n\n"
        "```python\nfrom shop.pricing import apply_coupon, apply_member_price\n\n"
        "def loyal_total(cart):\n    return apply_member_price(apply_coupon(cart_total(cart.items, 0), 0.1))\n```\n"
        "`loyal_total()` is new.\n")
    before = {kind: REGISTRY.get_sample_value("ragcode_ungrounded_names_total", {"kind": kind}) or 0.0
              for kind in ("path", "function")}
    reply = answer(runtime, SHOP, "main", "a total for loyal customers", html_url=HTML, overlay=overlay)
    assert reply.ungrounded == ["shop/loyalty.py", "apply_loyalty_points", "old_discount", "apply_member_price"]
    text = reply.markdown
    assert "`apply_loyalty_points(cart)` *\\(not found in this repository\\)*" in text
    assert "`shop/loyalty.py` *\\(not found in this repository\\)*" in text
    assert "`old_discount()` *\\(not found in this repository\\)*" in text, "deleted by the pull request"
    assert "`apply_bulk_discount()` *" not in text and "`shop/pricing.py` *" not in text, "the pull request has them"
    assert "`Cart.checkout` *" not in text and "`loyal_total()` *" not in text
    assert "from shop.pricing import apply_coupon, apply_member_price\n" in text, "code is left as it is"
    assert ("Not found in this repository: `shop/loyalty.py`, `apply_loyalty_points`, `old_discount`, "
            "`apply_member_price`.") in text
    after = {kind: REGISTRY.get_sample_value("ragcode_ungrounded_names_total", {"kind": kind})
             for kind in ("path", "function")}
    assert (after["path"] - before["path"], after["function"] - before["function"]) == (1, 3)
    standin.answer = "Use `cart_total()` in `shop/cart.py`."
    grounded = answer(runtime, SHOP, "main", "a total for loyal customers", html_url=HTML)
    assert grounded.ungrounded == [] and "not found" not in grounded.markdown
