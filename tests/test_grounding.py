"""Grounded replies: what an answer presents as existing, and how the names the index lacks are marked."""

from __future__ import annotations

from markdown_it import MarkdownIt

from bot.commands.grounding import MAX_CHECKED, ground, mentions
from bot.markdown import sanitize

KNOWN_PATHS = {"shop/pricing.py", "README.md", "shop/", "shop.py"}
KNOWN_NAMES = {"apply_coupon", "Ledger.record", "record", "save"}


def lookup(paths: list[str], names: list[str]) -> tuple[set[str], set[str]]:
    asked.append((paths, names))
    return {path for path in paths if path in KNOWN_PATHS}, {name for name in names if name in KNOWN_NAMES}


asked: list[tuple[list[str], list[str]]] = []


def test_paths_and_functions_presented_as_existing_are_found_in_prose_and_inline_code():
    found = mentions(
        "Call `apply_coupon(price, 0.1)` in `shop/pricing.py`, then `Ledger.record` and plan.py에서 helper() 보기. "
        "`ledger.record(5)`, `self.save()` and json.dumps() and `print()` are fine; the `calculate_tax` function too, "
        "and `normalize` 함수, `audit`를 호출. Not names: `price`, `x.y`, v1.2.3, e.g. this, https://example.com/a/b.py, `--flag`.\n"
        "    indented_code_call()\n")
    assert found.paths == ["shop/pricing.py", "plan.py"]
    assert found.names == ["apply_coupon", "Ledger.record", "helper", "record", "save", "calculate_tax", "normalize",
                           "audit"]


def test_code_blocks_are_read_only_for_the_repositorys_imports_and_the_names_they_define():
    found = mentions("```python\nfrom shop.pricing import apply_coupon, invented\nfrom requests import get\n"
                     "import os\n\ndef new_helper(x):\n    return not_checked(x)\n```\n"
                     "`new_helper()` is new and `shop/pricing.py` is real.\n")
    assert found.modules == [("shop.pricing", ["apply_coupon", "invented"]), ("requests", ["get"])]
    assert found.defined >= {"new_helper"} and found.names == [] and found.paths == ["shop/pricing.py"]


def test_unknown_names_are_marked_where_prose_first_names_them_and_listed_in_a_note():
    asked.clear()
    answer = ("Use `apply_coupon()` and `apply_discount(x)` *twice*: `apply_discount(y)` again.\n"
              "It lives in `shop/discounts.py`; see also shop/pricing.py and `Ledger.record`.\n\n"
              "```python\nfrom shop.pricing import apply_coupon, apply_member_price\nfrom requests import get\n"
              "apply_discount(1)\n```\n")
    result = ground(answer, lookup, "en")
    assert result.unknown == ["shop/discounts.py", "apply_discount", "apply_member_price"]
    assert result.markdown.count("*(not found in this repository)*") == 2, "first mention of each, in prose"
    assert "`apply_discount(x)` *(not found in this repository)* *twice*" in result.markdown
    assert "`shop/discounts.py` *(not found in this repository)*;" in result.markdown
    assert "```python\nfrom shop.pricing import apply_coupon, apply_member_price\n" in result.markdown
    assert "apply_discount(1)\n```" in result.markdown, "code the user copies is left alone"
    assert result.markdown.rstrip().endswith(
        "> Not found in this repository: `shop/discounts.py`, `apply_discount`, `apply_member_price`. "
        "Check them before relying on them.")
    roots, rest = asked
    assert roots == (["requests.py", "requests/", "shop.py", "shop/"], []), "is the module the repository's?"
    assert "shop/pricing.py" in rest[0] and "get" not in rest[1], "requests is not the repository's"


def test_the_mark_survives_the_sanitizer_as_emphasis_even_before_a_korean_particle():
    result = ground("`apply_discount()`는 `shop/discounts.py`에 있습니다.", lookup, "ko")
    assert result.unknown == ["shop/discounts.py", "apply_discount"]
    clean = sanitize(result.markdown)
    tokens = [token.type for token in MarkdownIt("commonmark").parseInline(clean)[0].children]
    assert tokens.count("em_open") == 2, clean
    assert "`apply_discount()` *\\(이 저장소에 없음\\)* 는" in clean
    assert "이 저장소에서 찾지 못한 이름: `shop/discounts.py`, `apply_discount`." in clean


def test_a_grounded_answer_is_left_as_it_is():
    answer = "Use `apply_coupon()` from `shop/pricing.py` and `Ledger.record`.\n"
    result = ground(answer, lookup, "en")
    assert (result.markdown, result.unknown, result.checked) == (answer, [], 3)


def test_hostile_answers_are_checked_within_bounds():
    asked.clear()
    flood = " ".join(f"`invented_{i}()`" for i in range(10_000)) + " `a" + "`" * 50 + "\n```\nunclosed"
    result = ground(flood, lookup, "en")
    [(paths, names)] = asked
    assert len(names) == MAX_CHECKED and len(result.unknown) == MAX_CHECKED
    assert result.markdown.count("*(not found in this repository)*") == MAX_CHECKED
    assert "unclosed\n```\n\n> Not found in this repository: `invented_0`" in result.markdown, "the note is not code"
