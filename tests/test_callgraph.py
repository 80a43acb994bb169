"""The call graph: calls read with each grammar's tags.scm, imports telling where a name comes from, resolution
within the repository, and what the pipeline keeps of it."""

from __future__ import annotations

from importlib import resources

import pytest

from bot.commands.related import MAX_AMBIGUOUS, module_matches, resolve
from bot.documents import DocumentRef
from bot.indexer import tags
from bot.indexer.chunker import chunk_file
from bot.indexer.languages import _GRAMMARS
from tests.test_pipeline import APP, CountingModel, run


def calls_of(path: str, source: str) -> dict[str, tuple[str, ...]]:
    return {unit.name: unit.calls for unit in chunk_file(path, source)}


def test_every_grammar_wheel_ships_a_tags_query_that_compiles():
    for language, factory in _GRAMMARS.items():
        package = factory.__module__.split(".")[0]
        assert resources.files(package).joinpath("queries/tags.scm").is_file(), package
        assert tags._queries(language) is not None, language


@pytest.mark.parametrize(("path", "source", "function", "expected"), [
    ("a.py", "def f(x):\n    g(x)\n    x.h()\n    return len(x)\n", "f", ("g", "h", "len")),
    ("a.js", "function f(x) {\n  g(x);\n  x.h();\n  require('y');\n  new K();\n}\n", "f", ("g", "h")),
    ("a.ts", "function f(x: number): number {\n  return g(x) + x.h();\n}\n", "f", ("g", "h")),
    ("a.tsx", "function F() {\n  return <div>{g()}</div>;\n}\n", "F", ("g",)),
    ("A.java", "class A {\n  int f() {\n    return g() + b.h(1);\n  }\n}\n", "A.f", ("g", "h")),
    ("a.go", "package a\nfunc f() {\n\tg()\n\tfmt.Println(1)\n}\n", "f", ("g", "Println")),
    ("a.rs", "fn f() {\n    g();\n    x.h();\n    println!(\"x\");\n}\n", "f", ("g", "h", "println")),
    ("a.c", "int f(void) {\n  return g(1) + s.h();\n}\n", "f", ("g", "h")),
    ("a.cpp", "int f() {\n  return g() + ns::k() + p->h() + T::t<int>();\n}\n", "f", ("g", "k", "h", "t")),
    ("a.rb", "def f(x)\n  y = compute(x)\n  helper\n  y + x\nend\n", "f", ("compute", "helper")),
])
def test_calls_come_from_each_languages_tags_query(path, source, function, expected):
    assert calls_of(path, source)[function] == expected


def test_definitions_and_local_variables_are_not_calls_and_nested_calls_belong_to_the_innermost_function():
    source = ("class Cart:\n    def checkout(self):\n        total = self.total()\n"
              "        def inner():\n            return audit(total)\n        return charge(inner())\n\n\n"
              "RESULT = setup()\n")
    assert calls_of("shop/cart.py", source) == {
        "<module>": ("setup",), "Cart.checkout": ("total", "charge", "inner"),
        "Cart.checkout.<locals>.inner": ("audit",)}
    ruby = "class Foo\n  def bar(items)\n    count = items.size\n    count + baz(items)\n  end\nend\n"
    assert calls_of("foo.rb", ruby)["Foo.bar"] == ("size", "baz"), "parameters and locals are not calls"


def test_imports_say_where_a_called_name_comes_from():
    python = ("from shop.pricing import apply_coupon as coupon, add_tax\nfrom ..core.money import Money\n"
              "from . import helpers\nimport os.path\n\n\ndef total(x):\n"
              "    return add_tax(coupon(Money(x), 0.1), 0.1) + os.path.getsize('f') + helpers.one()\n")
    assert calls_of("app/shop/cart.py", python)["total"] == (
        "add_tax", "add_tax@shop/pricing", "apply_coupon", "apply_coupon@shop/pricing", "Money", "Money@app/core/money",
        "getsize", "one")
    javascript = ("import { formatPrice as fmt, cartTotal } from './cart.js';\nimport { get } from 'lodash';\n"
                  "import { api } from '@/lib/api';\n"
                  "export function show(items) { return fmt(cartTotal(items)) + get(items) + api(); }\n")
    assert calls_of("web/app/show.ts", javascript)["show"] == (
        "formatPrice", "formatPrice@web/app/cart", "cartTotal", "cartTotal@web/app/cart", "get", "get@lodash",
        "api", "api@lib/api")


def test_calls_are_bounded_whatever_the_file():
    many = "def f():\n    " + "x" * 150 + "()\n" + "".join(f"    call_{i}()\n" for i in range(1000))
    [f] = [unit for unit in chunk_file("many.py", many, max_unit_lines=10_000) if unit.name == "f"]
    assert len(f.calls) == tags.MAX_CALLS and f.calls[0] == "call_0", "the first names, none over 100 characters"
    hostile = "def g():\n    " + "(" * 3000 + "h()" + ")" * 3000 + "\n"
    assert calls_of("hostile.py", hostile)["g"] == ("h",)


def test_a_function_keeps_its_hash_whatever_it_calls_and_a_changed_import_rewrites_it_without_a_model_call(
        runtime, make_repo):
    model = CountingModel()
    runtime.text_model = model
    repo = make_repo("app")
    repo.write("app/pay.py", "from app.cards import charge\n\n\ndef pay(amount):\n    return charge(amount)\n")
    repo.commit()
    run(runtime, repo)
    [before] = [d for d in runtime.store.documents(APP.id, "main", [r.id for r in runtime.store.refs(APP.id, "main")])
                if d.name == "pay"]
    assert before.calls == ("charge", "charge@app/cards")
    model.calls.clear()
    repo.write("app/pay.py", "from app.wallet import charge\n\n\ndef pay(amount):\n    return charge(amount)\n")
    repo.commit()
    report = run(runtime, repo)
    assert model.calls == ["<module>"], "the function's code is the same: only the changed import is summarized"
    assert report.functions_unchanged == 1
    [after] = runtime.store.documents(APP.id, "main", [before.id])
    assert after.calls == ("charge", "charge@app/wallet") and after.content_hash == before.content_hash
    assert after.summary == before.summary


def _ref(path: str, name: str) -> tuple[str, DocumentRef]:
    return "main", DocumentRef(id=f"{path}:{name}", path=path, name=name, content_hash="h", start_line=1, end_line=2)


def test_a_call_resolves_by_import_then_by_file_then_only_when_few_functions_share_the_name():
    pricing, other = _ref("shop/pricing.py", "apply"), _ref("legacy/pricing.py", "apply")
    assert resolve("shop/cart.py", {"shop/pricing"}, [pricing, other]) == [pricing]
    assert resolve("shop/cart.py", {"lodash"}, [pricing, other]) == [], "an import from elsewhere links nothing"
    same = _ref("shop/cart.py", "apply")
    assert resolve("shop/cart.py", set(), [pricing, same, other]) == [same]
    assert resolve("shop/cart.py", set(), [pricing, other]) == [pricing, other]
    crowd = [_ref(f"m{i}.py", f"C{i}.save") for i in range(MAX_AMBIGUOUS + 1)]
    assert resolve("x.py", set(), crowd) == [], "a name defined in many places says nothing about which one"
    assert module_matches("src/shop/pricing.py", "shop/pricing") and module_matches("shop/__init__.py", "shop")
    assert module_matches("web/cart/index.ts", "web/cart") and not module_matches("shop/pricing2.py", "shop/pricing")
