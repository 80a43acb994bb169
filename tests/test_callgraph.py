"""The call graph: calls read with each grammar's tags.scm, imports telling where a name comes from, resolution
within the repository, and what the pipeline keeps of it."""

from __future__ import annotations

from importlib import resources

import pytest

from bot.commands.related import MAX_AMBIGUOUS, module_matches, related, resolve
from bot.commands.views import views_of
from bot.documents import DocumentRef, Hit
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
    ("a.py", "def f(x):\n    g(x)\n    x.h()\n    return len(x)\n", "f", ("g", "h", "h^x", "len")),
    ("a.js", "function f(x) {\n  g(x);\n  x.h();\n  require('y');\n  new K();\n}\n", "f", ("g", "h", "h^x")),
    ("a.ts", "function f(x: number): number {\n  return g(x) + x.h();\n}\n", "f", ("g", "h", "h^x")),
    ("a.tsx", "function F() {\n  return <div>{g()}</div>;\n}\n", "F", ("g",)),
    ("A.java", "class A {\n  int f() {\n    return g() + b.h(1) + this.k() + super.m();\n  }\n}\n", "A.f",
     ("g", "h", "h^b", "k", "k^self", "m", "m^super")),
    ("a.go", "package a\nfunc f() {\n\tg()\n\tfmt.Println(1)\n}\n", "f", ("g", "Println", "Println^fmt")),
    ("a.rs", "fn f() {\n    g();\n    x.h();\n    println!(\"x\");\n    Config::load();\n    Self::new();\n}\n", "f",
     ("g", "h", "h^x", "println", "load", "load^Config", "new", "new^self")),
    ("a.c", "int f(void) {\n  return g(1) + s.h() + p->q();\n}\n", "f", ("g", "h", "h^s", "q", "q^p")),
    ("a.cpp", "int f() {\n  return g() + ns::k() + p->h() + T::t<int>() + this->m();\n}\n", "f",
     ("g", "k", "k^ns", "h", "h^p", "t", "t^T", "m", "m^self")),
    ("a.rb", "def f(x)\n  y = compute(x)\n  helper\n  @client.get(y)\n  y + x\nend\n", "f",
     ("compute", "helper", "get", "get^client")),
])
def test_calls_come_from_each_languages_tags_query(path, source, function, expected):
    assert calls_of(path, source)[function] == expected


def test_definitions_and_local_variables_are_not_calls_and_nested_calls_belong_to_the_innermost_function():
    source = ("class Cart:\n    def checkout(self):\n        total = self.total()\n"
              "        def inner():\n            return audit(total)\n        return charge(inner())\n\n\n"
              "RESULT = setup()\n")
    assert calls_of("shop/cart.py", source) == {
        "<module>": ("setup",), "Cart.checkout": ("total", "total^self", "charge", "inner"),
        "Cart.checkout.<locals>.inner": ("audit",)}
    ruby = "class Foo\n  def bar(items)\n    count = items.size\n    count + baz(items)\n  end\nend\n"
    assert calls_of("foo.rb", ruby)["Foo.bar"] == ("size", "size^items", "baz"), "parameters and locals are not calls"


def test_imports_say_where_a_called_name_comes_from():
    python = ("from shop.pricing import apply_coupon as coupon, add_tax\nfrom ..core.money import Money\n"
              "from . import helpers\nimport os.path\n\n\ndef total(x):\n"
              "    return add_tax(coupon(Money(x), 0.1), 0.1) + os.path.getsize('f') + helpers.one()\n")
    assert calls_of("app/shop/cart.py", python)["total"] == (
        "add_tax", "add_tax@shop/pricing", "apply_coupon", "apply_coupon@shop/pricing", "Money", "Money@app/core/money",
        "getsize", "getsize^path", "one", "one^helpers")
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
    nested = "def g():\n    " + "(" * 50 + "h()" + ")" * 50 + "\n"
    assert calls_of("nested.py", nested)["g"] == ("h",)
    hostile = "def g():\n    " + "(" * 3000 + "h()" + ")" * 3000 + "\n"
    assert calls_of("hostile.py", hostile)["g"] == (), "a call deeper than MAX_DEPTH is not looked for"
    chain = "def f():\n    return x" + ".go()" * 20_000 + "\n"  # the query's work grew with its square
    calls = {entry for unit in chunk_file("chain.py", chain) for entry in unit.calls}
    assert calls == {"go", "go^go"}, "the outer calls; the innermost, x.go(), lies deeper than MAX_DEPTH"


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


def test_what_a_call_is_made_on_is_recorded_with_it_and_bounded():
    source = ("from shop.pricing import apply_coupon as coupon\n\n\nclass Cart:\n    def checkout(self, store):\n"
              "        super().save()\n        make().run()\n        rows[0].run()\n        run()\n"
              "        Money.parse(', '.join(['a']).strip())\n        self._client.get(store.upsert(self.total()))\n"
              "        coupon(1)\n        x.coupon()\n")
    assert calls_of("shop/cart.py", source)["Cart.checkout"] == (
        "super", "save", "save^super", "make", "run", "run^", "run^make", "run^?", "parse", "parse^Money", "strip",
        "strip^join", "get", "get^_client", "upsert", "upsert^store", "total", "total^self", "apply_coupon", "apply_coupon@shop/pricing",
        "coupon", "coupon^x"), "an import renames only the bare call; `run^` says run is called bare too; a " \
        "literal's method (join) is not recorded, a call's result is named by the call (strip^join)"
    many = "def f(a, b, c, d, e, g):\n" + "".join(f"    {o}.send()\n" for o in "abcdeg") + "    send()\n"
    assert tags.MAX_RECEIVERS < 6
    assert calls_of("many.py", many)["f"] == ("send", "send^", *(f"send^{o}" for o in "abcdeg"[:tags.MAX_RECEIVERS]))


def test_a_method_call_resolves_by_what_it_is_called_on():
    client = _ref("app/github.py", "GitHubApp.client")
    assert resolve("app/bedrock.py", set(), [client], caller_name="bedrock_clients", receivers={"session"}) == [], \
        "a library object's method is not the repository's one method of that name"
    assert resolve("app/bedrock.py", set(), [client], caller_name="repos", receivers={"app"}) == [client]
    assert resolve("app/bedrock.py", set(), [client], caller_name="repos", receivers={"github_app"}) == [client]
    assert resolve("app/bedrock.py", set(), [client], caller_name="repos", receivers={"GitHubApp"}) == [client]
    assert resolve("app/bedrock.py", set(), [client], caller_name="repos", receivers={"Other"}) == []
    assert resolve("app/bedrock.py", set(), [client], caller_name="f", receivers={"?"}) == []
    assert resolve("app/github.py", set(), [client], caller_name="f", receivers={"?"}) == [client], "same file"
    assert resolve("app/bedrock.py", set(), [client], caller_name="f", receivers={"session", ""}) == [client], \
        "a bare call beside the method call resolves as before"

    mine, theirs = _ref("shop/cart.py", "Cart.save"), _ref("shop/base.py", "Model.save")
    other_local = _ref("shop/cart.py", "Line.save")
    candidates = [mine, theirs, other_local]
    assert resolve("shop/cart.py", set(), candidates, caller_name="Cart.checkout", receivers={"self"}) == [mine]
    assert resolve("shop/cart.py", set(), candidates, caller_name="Cart.checkout.<locals>.inner",
                   receivers={"self"}) == [mine], "a closure's self is its method's"
    assert resolve("shop/cart.py", set(), candidates, caller_name="Cart.save", receivers={"super"}) == [other_local]
    assert resolve("shop/cart.py", set(), [mine, theirs], caller_name="Cart.save", receivers={"super"}) == [theirs]
    assert resolve("shop/order.py", set(), [theirs], caller_name="Order.place", receivers={"self"}) == [theirs], \
        "inherited from a class elsewhere"
    crowd = [_ref(f"m{i}.py", f"C{i}.upsert") for i in range(MAX_AMBIGUOUS + 1)]
    assert resolve("x.py", set(), crowd, caller_name="f", receivers={"self"}) == []

    store_classes = [_ref("bot/store/local.py", "LocalStore.upsert"), _ref("bot/cache.py", "Cache.upsert")]
    assert resolve("bot/pipeline.py", set(), store_classes, caller_name="f", receivers={"store"}) == \
        store_classes[:1]
    assert resolve("bot/pipeline.py", set(), store_classes, caller_name="f", receivers={"db"}) == [], \
        "two letters match no class"
    protocol = _ref("bot/store/base.py", "Store.upsert")
    stores = [*store_classes, _ref("bot/store/search.py", "SearchStore.upsert"), protocol]
    assert resolve("bot/pipeline.py", set(), stores, caller_name="f", receivers={"store"}) == [protocol], \
        "a class named as the receiver is meant before the classes whose names hold it"
    assert resolve("bot/store/local.py", set(), stores, caller_name="f", receivers={"store"}) == store_classes[:1], \
        "a fitting class in the caller's own file comes first"
    table = _ref("llm/prices.py", "Price.of")
    assert resolve("cost.py", set(), [table], caller_name="f", receivers={"prices"}) == [table], "a plural receiver"
    total, method = _ref("shop/pricing.py", "total"), _ref("shop/cart.py", "Cart.total")
    assert resolve("shop/views.py", set(), [total, method], caller_name="f", receivers={"pricing"}) == [total]
    assert resolve("svc/main.go", set(), [_ref("svc/pricing/rules.go", "Total")], caller_name="main",
                   receivers={"pricing"}) == [_ref("svc/pricing/rules.go", "Total")], "a Go package is its folder"


def test_related_functions_follow_method_calls_to_their_class_not_to_a_namesake(runtime, make_repo):
    repo = make_repo("app")
    repo.write("app/github.py", "class GitHubApp:\n    def client(self, installation):\n"
               "        return self.token(installation)\n\n    def token(self, installation):\n"
               "        return installation\n\n    def repos(self, installation):\n"
               "        return self.client(installation).list()\n")
    repo.write("app/bedrock.py", "import boto3\n\n\ndef bedrock_clients(regions):\n    session = boto3.Session()\n"
               "    return [session.client('bedrock-runtime', region_name=r) for r in regions]\n\n\n"
               "def github_repos(app, installation):\n    return app.client(installation)\n")
    repo.commit()
    run(runtime, repo)
    by_name = {d.name: d for d in runtime.store.documents(APP.id, "main",
                                                           [r.id for r in runtime.store.refs(APP.id, "main")])}

    def links(name: str) -> set[tuple[str, str]]:
        hits = [Hit(document=by_name[name], score=1.0)]
        return {(hit.document.name, hit.relation) for hit in related(runtime.store, APP.id, views_of("main", None),
                                                                      hits, 10)}

    assert links("bedrock_clients") == set(), "boto3's session.client is not GitHubApp.client"
    assert links("GitHubApp.client") == {("GitHubApp.token", "callee"), ("GitHubApp.repos", "caller"),
                                         ("github_repos", "caller")}
    seeds = [Hit(document=by_name[name], score=1.0) for name in ("GitHubApp.token", "GitHubApp.client")]
    both = related(runtime.store, APP.id, views_of("main", None), seeds, 10)
    assert {(hit.document.name, hit.relation, hit.related_to) for hit in both} == {
        ("GitHubApp.repos", "caller", "GitHubApp.client"), ("github_repos", "caller", "GitHubApp.client")}, \
        "a function that calls one result is not a caller of another"


def test_a_name_imported_in_several_places_is_taken_from_the_last_import_every_time():
    source = ("if a:\n    from .x import X as P\nelif b:\n    from .y import Y as P\nelse:\n    from .z import Z as P\n\n\n"
              "def f():\n    return P()\n")
    seen = {calls_of("pkg/m.py", source + " " * i)["f"] for i in range(12)}  # no cached parse: each text differs
    assert seen == {("Z", "Z@pkg/z")}
