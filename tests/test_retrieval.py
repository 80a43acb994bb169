"""Retrieval over a real index: Korean and English queries, fusion, Faiss re-ranking, threshold, isolation."""

from __future__ import annotations

import numpy as np
import pytest

from bot.commands.answer import answer
from bot.commands.retrieve import fuse, permalink, rerank, retrieve
from bot.documents import Repository
from bot.indexer.filters import IndexOptions
from bot.indexer.pipeline import index_branch

SHOP_REPO = Repository(11, "acme/shop", 1)
TOOLS_REPO = Repository(12, "acme/tools", 1)

SHOP = '''"""주문과 결제."""


def calculate_discount(price: int, coupon_rate: float) -> int:
    """쿠폰 할인율을 적용한 최종 가격을 계산한다."""
    return int(price * (1 - coupon_rate))


def send_receipt_email(order_id: str, address: str) -> None:
    """주문 영수증을 이메일로 보낸다."""
    print(order_id, address)


class Cart:
    """장바구니."""

    def add_item(self, sku: str, quantity: int) -> None:
        """장바구니에 상품을 담는다."""
        self.items[sku] = self.items.get(sku, 0) + quantity

    def total_price(self) -> int:
        """장바구니에 담긴 상품의 총 금액을 구한다."""
        return sum(self.prices[sku] * n for sku, n in self.items.items())
'''

PARSER = '''def parse_csv_line(line: str) -> list[str]:
    """Split one CSV line into fields, honouring quotes."""
    return next(csv.reader([line]))


def read_config(path: str) -> dict:
    """Load a YAML configuration file into a dictionary."""
    with open(path) as handle:
        return yaml.safe_load(handle)
'''


@pytest.fixture
def indexed(runtime, make_repo):
    shop = make_repo("shop")
    shop.write("shop/orders.py", SHOP)
    shop.commit()
    index_branch(runtime, shop.repo, SHOP_REPO, "main", shop.repo.head.commit.hexsha,
                 options=IndexOptions(summary_lang="ko"))
    tools = make_repo("tools")
    tools.write("tools/parsing.py", PARSER)
    tools.commit()
    index_branch(runtime, tools.repo, TOOLS_REPO, "main", tools.repo.head.commit.hexsha,
                 options=IndexOptions(summary_lang="ko"))
    return runtime


@pytest.mark.parametrize(("query", "expected"), [
    ("쿠폰 할인 가격 계산", "calculate_discount"),
    ("영수증 이메일 발송", "send_receipt_email"),
    ("장바구니에 상품 추가하는 코드", "Cart.add_item"),
    ("장바구니 총 금액", "Cart.total_price"),
])
def test_korean_queries_find_the_function(indexed, query, expected):
    hits = retrieve(indexed, SHOP_REPO.id, "main", query, min_score=0.0)
    assert hits[0].document.name == expected


def test_english_query_finds_the_function(indexed):
    hits = retrieve(indexed, TOOLS_REPO.id, "main", "load yaml configuration file", min_score=0.0)
    assert hits[0].document.name == "read_config"


def test_results_never_cross_repositories(indexed):
    for query in ("parse csv line", "쿠폰 할인", "yaml config", "장바구니"):
        for repo, path in ((SHOP_REPO.id, "shop/orders.py"), (TOOLS_REPO.id, "tools/parsing.py")):
            hits = retrieve(indexed, repo, "main", query, min_score=0.0)
            assert hits and {hit.document.path for hit in hits} == {path}


def test_threshold_cuts_and_scores_are_sorted(indexed):
    hits = retrieve(indexed, SHOP_REPO.id, "main", "쿠폰 할인", min_score=0.0, k=50)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and len(hits) == 5
    cut = retrieve(indexed, SHOP_REPO.id, "main", "쿠폰 할인", min_score=scores[1], k=50)
    assert [hit.document.id for hit in cut] == [hit.document.id for hit in hits if hit.score >= scores[1]]
    assert retrieve(indexed, SHOP_REPO.id, "main", "쿠폰 할인", min_score=1.0) == []


def test_pull_request_files_are_boosted(indexed):
    plain = retrieve(indexed, SHOP_REPO.id, "main", "가격", min_score=0.0, k=10)
    boosted = retrieve(indexed, SHOP_REPO.id, "main", "가격", min_score=0.0, k=10, boost_paths={"shop/orders.py"})
    assert all(b.score > p.score for p, b in zip(plain, boosted, strict=True))


def test_fuse_and_rerank():
    fused = fuse([("a", 9.0), ("b", 5.0)], [("b", 0.9), ("c", 0.8)])
    assert max(fused, key=fused.get) == "b" and set(fused) == {"a", "b", "c"}
    vectors = np.eye(3, dtype=np.float32)
    assert rerank(np.array([0.0, 1.0, 0.0], dtype=np.float32), vectors).tolist() == [0.0, 1.0, 0.0]


def test_answer_offline_lists_functions_with_permalinks(indexed):
    state = indexed.store.branch_state(SHOP_REPO.id, "main")
    reply = answer(indexed, SHOP_REPO, "main", "쿠폰 할인 가격을 계산하는 함수", html_url="https://github.com/acme/shop")
    first = reply.hits[0].document
    link = permalink("https://github.com/acme/shop", state.commit, first.path, first.start_line, first.end_line)
    assert link == f"https://github.com/acme/shop/blob/{state.commit}/shop/orders.py#L4-L6"
    assert link in reply.markdown
    assert "RAGCODE_LLM=bedrock" in reply.markdown and "<details>" in reply.markdown
    assert "def calculate_discount" in reply.markdown


def test_answer_for_unindexed_repository_says_so(indexed):
    reply = answer(indexed, Repository(13, "acme/unknown"), "main", "무엇이든", html_url="https://github.com/acme/unknown")
    assert "색인되지 않았습니다" in reply.markdown and reply.hits == []


def test_an_index_is_never_answered_for_another_repository_or_installation(indexed):
    question = "쿠폰 할인 가격을 계산하는 함수"
    assert answer(indexed, SHOP_REPO, "main", question, html_url="https://github.com/acme/shop").hits
    # the same name re-created as a new repository (new id), and the same id reached through another installation
    for impostor in (Repository(999, "acme/shop", 1), Repository(SHOP_REPO.id, "acme/shop", 2)):
        reply = answer(indexed, impostor, "main", question, html_url="https://github.com/acme/shop")
        assert reply.hits == [] and "calculate_discount" not in reply.markdown
