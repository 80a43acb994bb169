"""Hostile repository content stays bounded: chunker limits, minified and bundled files, run limits, model inputs."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import git
import pytest

from bot.documents import Document, Hit, Repository, Unit
from bot.embed.local import MAX_TOKENS, LocalEmbedder
from bot.indexer.chunker import MAX_NAME_CHARS, Limits, TooLarge, chunk_file, unit_size
from bot.indexer.filters import (
    MINIFIED,
    IndexOptions,
    content_skip_reason,
    minified_or_bundled,
    path_skip_reason,
)
from bot.indexer.pipeline import embedding_text, index_branch
from bot.llm.offline import extractive_summary
from bot.llm.prompts import (
    MAX_CONTEXT_CHARS,
    MAX_FIELD_CHARS,
    MAX_REQUEST_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_UNIT_CHARS,
    MAX_UNIT_CONTEXT_CHARS,
    generation_messages,
    parse_summary,
    summary_messages,
)
from bot.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits()
NO_FILE_LIMITS = Limits(file_units=10**9, file_chars=10**12)  # to look at every unit of a hostile file

APP = Repository(101, "acme/app", 1)


def nested_one_line_js(size: int) -> str:
    """`function f0(a){function f1(a){...}}` on one line: every function's header row is the whole file."""
    opened: list[str] = []
    while len(opened) * 17 < size:
        opened.append(f"function f{len(opened)}(a){{")
    return "".join(opened) + "return a;" + "}" * len(opened) + "\n"


def single_line_bundle(size: int) -> str:
    """A minified bundle on one line: a module table of small functions, as webpack writes `public/app.js`."""
    rnd = random.Random(7)
    modules = []
    while sum(map(len, modules)) < size:
        n = len(modules)
        modules.append(f"{n}:function(e,t,n){{function r{n}(e){{return e+{rnd.randint(0, 999)}}}var o=n({n % 97});"
                       f"t.a=function(x){{return r{n}(x)*o}}}},")
    return '(()=>{"use strict";var e={' + "".join(modules) + "};})();\n"


def deep_python(depth: int) -> str:
    """Functions nested ``depth`` deep, four spaces a level."""
    rows = [f"{'    ' * level}def level_{level}(value):" for level in range(depth)]
    return "\n".join(rows) + f"\n{'    ' * depth}return value\n"


# -- the chunker ---------------------------------------------------------------------------------------------


def test_nested_one_line_functions_keep_headers_and_context_bounded() -> None:
    source = nested_one_line_js(13_000)
    functions = source.count("function ")
    with pytest.raises(TooLarge, match="RAGCODE_MAX_FILE_UNIT_CHARS"):
        chunk_file("src/nest.js", source)
    units = chunk_file("src/nest.js", source, limits=NO_FILE_LIMITS)
    assert len(units) == functions
    assert max(len(u.context) for u in units) <= LIMITS.context_chars
    assert max(len(u.code) for u in units) <= LIMITS.unit_chars
    by_name = {u.name.rsplit(".", 1)[-1]: u for u in units}
    innermost = by_name[f"f{functions - 1}"]
    # the context is the exact headers, innermost last, as many as fit (not whole 13 KB rows per level)
    assert innermost.context.split("\n")[-1] == f"function f{functions - 2}(a)"
    assert all(len(u.name) <= MAX_NAME_CHARS for u in units)
    assert sum(map(unit_size, units)) <= functions * (len(source) + LIMITS.context_chars)


def test_single_line_bundle_is_refused_by_the_unit_limit() -> None:
    bundle = single_line_bundle(185 * 1024)
    with pytest.raises(TooLarge, match=r"more than 2000 units \(RAGCODE_MAX_FILE_UNITS\)"):
        chunk_file("public/app.js", bundle)


def test_seventy_thousand_character_identifier() -> None:
    name = "x" * 70_000
    source = f"def {name}(value):\n    return value\n\n\ndef small():\n    return 1\n"
    units = chunk_file("ids.py", source)
    long = sorted((u for u in units if u.kind == "part"), key=lambda u: int(u.name.rsplit("#", 1)[1]))
    assert all(len(u.name.split("#")[0]) <= MAX_NAME_CHARS for u in units)
    assert all(len(u.code) <= LIMITS.unit_chars for u in units)
    assert "".join(u.code for u in long).replace("\n", "") == source.split("\n\n\n")[0].replace("\n", "")
    assert [u.name for u in long] == [f"{long[0].name.split('#')[0]}#{i}" for i in range(1, len(long) + 1)]
    assert {"small"} <= {u.name for u in units}
    summary = extractive_summary(long[0], "ko")
    assert len(summary) <= 1_000 and "x" * (MAX_NAME_CHARS + 1) not in summary


def test_deep_python_nesting_has_bounded_names_and_context() -> None:
    source = deep_python(120)
    units = chunk_file("deep.py", source, limits=NO_FILE_LIMITS)
    assert len({u.name.split("#")[0] for u in units}) == 120
    assert max(len(u.name) for u in units) <= MAX_NAME_CHARS + len("#99")
    assert max(len(u.context) for u in units) <= LIMITS.context_chars
    deepest = next(u for u in units if u.name.endswith("level_119"))
    assert deepest.context.endswith("def level_118(value):") and deepest.name.startswith("…")
    with pytest.raises(TooLarge):
        chunk_file("deep.py", deep_python(400))  # every level repeats the rest of the file


def test_file_of_tiny_functions_stops_at_the_unit_limit() -> None:
    source = "".join(f"const a{i} = () => {i};\n" for i in range(30_000))
    assert len(source) < 1024 * 1024
    with pytest.raises(TooLarge, match="RAGCODE_MAX_FILE_UNITS"):
        chunk_file("tiny.js", source)
    assert len(chunk_file("tiny.js", source, limits=Limits(file_units=30_001))) == 30_000


def test_very_long_lines_of_text_are_windowed_by_characters() -> None:
    rnd = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    paragraphs = [" ".join(rnd.choice(words) for _ in range(2_000)) for _ in range(40)]
    source = "# Notes\n\n" + "\n".join(paragraphs) + "\n"
    units = chunk_file("docs/notes.md", source)
    assert all(len(u.code) <= LIMITS.unit_chars and u.kind == "window" for u in units)
    lines = source.split("\n")
    for unit in units:
        first = lines[unit.start_line - 1]
        assert unit.code.split("\n")[0] in first  # a window starts inside the row it names
    assert sum(len(u.code) for u in units) >= len(source) - 200  # nothing dropped but line breaks
    one_line = chunk_file("data.txt", "y" * 100_000)
    assert [(u.name, u.ordinal) for u in one_line] == [("<lines 1-1>", i) for i in range(5)]
    assert [len(u.code) for u in one_line] == [24_000] * 4 + [4_000]


def test_function_with_a_long_data_line_is_cut_into_character_parts() -> None:
    blob = "".join(random.Random(5).choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/") for _ in range(60_000))
    source = f'def logo():\n    """The logo, base64."""\n    return "{blob}"\n\n\ndef other():\n    return 2\n'
    assert content_skip_reason(source.encode(), IndexOptions(), "app/logo.py") is None  # data, not minified
    units = chunk_file("app/logo.py", source)
    parts = [u for u in units if u.name.startswith("logo#")]
    assert len(parts) == 3 and all(len(u.code) <= LIMITS.unit_chars for u in parts)
    assert parts[0].code.startswith('def logo():\n    """The logo, base64."""')
    assert (parts[0].start_line, parts[-1].end_line) == (1, 3)
    assert next(u for u in units if u.name == "other").code == "def other():\n    return 2"


# -- minified and bundled files ------------------------------------------------------------------------------

MINIFIED_JS = (
    '/*! tinylib v1.2.0 | MIT */\n!function(e,t){"object"==typeof exports&&"undefined"!=typeof module?'
    'module.exports=t():"function"==typeof define&&define.amd?define(t):(e=e||self).tiny=t()}(this,function(){'
    '"use strict";' + "".join(f"function n{i}(e,t){{if(!e)return t;for(var r=0,o=e.length;r<o;r++)"
                               f"t=t(e[r],r);return t}}var a{i}={{map:n{i},size:function(e){{return e.length}}}};"
                               for i in range(40)) + "return{map:n0}});\n"
)
WEBPACK_DEV = (
    "/******/ (() => { // webpackBootstrap\n/******/ \tvar __webpack_modules__ = ({\n"
    + "".join(f'\n/***/ "./src/m{i}.js":\n/***/ ((module) => {{\n\nmodule.exports = function m{i}(x) {{\n'
              f"  return x + {i};\n}};\n\n/***/ }}),\n" for i in range(20))
    + "\n/******/ \t});\n/******/ })()\n;\n"
)
WEBPACK_CHUNK = '"use strict";(self["webpackChunkshop"] = self["webpackChunkshop"] || []).push([[179],{\n' + (
    "".join(f"/***/ {i}: (function(module) {{\n  module.exports = {i};\n}}),\n" for i in range(30)) + "}]);\n")
COMPILED_TS = "".join(f"export function f{i}(x) {{\n    return x * {i};\n}}\n" for i in range(30)) + (
    "//# sourceMappingURL=index.js.map\n")
MINIFIED_CSS = "".join(f".c{i}{{color:#{i:03x};margin:0 {i}px;padding:{i}px}}" for i in range(200)) + "\n"


@pytest.mark.parametrize(("path", "text"), [
    ("public/app.js", single_line_bundle(185 * 1024)),
    ("static/lib.js", MINIFIED_JS),
    ("web/main.js", WEBPACK_DEV),
    ("web/179.js", WEBPACK_CHUNK),
    ("lib/index.js", COMPILED_TS),
    ("styles/site.css", MINIFIED_CSS),
    ("src/nest.js", nested_one_line_js(13_000)),
])
def test_minified_and_bundled_files_are_skipped_as_generated(path: str, text: str) -> None:
    assert content_skip_reason(text.encode(), IndexOptions(), path) == MINIFIED


@pytest.mark.parametrize("path", ["static/jquery.min.js", "assets/site.min.css", "web/vendor.bundle.js",
                                  "public/bundle.js", "build/static/js/main.chunk.js", "dist/lib.umd.js"])
def test_bundle_names_are_skipped_as_generated(path: str) -> None:
    assert path_skip_reason(path, IndexOptions()) == MINIFIED


def test_ordinary_files_are_not_taken_for_minified() -> None:
    tracked = git.Repo(ROOT).git.ls_files().splitlines()  # the project's own files, not caches or the venv
    own = [ROOT / name for name in tracked if Path(name).suffix in (".py", ".md", ".toml", ".yml", ".json")]
    assert len(own) > 50
    assert [str(p) for p in own if minified_or_bundled(p.read_bytes(), str(p))] == []
    prose = "\n\n".join("This paragraph explains the design in plain words, one long line per paragraph, "
                        * 12 for _ in range(30))
    table = "const PRIMES = [" + ", ".join(str(n) for n in range(2, 20_000)) + "];\n"
    docs = "# Bundling\n\nOur build emits `webpackChunkshop` and `__webpack_require__`; see webpackJsonp.\n" * 5
    mention = "// we strip the //# sourceMappingURL= comment in build.js\nexport const x = 1;\n" + "\n" * 600
    for path, text in [("docs/design.md", prose), ("src/primes.js", table), ("docs/bundling.md", docs),
                       ("src/strip.js", mention)]:
        assert minified_or_bundled(text.encode(), path) is False, path


# -- the run -------------------------------------------------------------------------------------------------

MODULE = "def one():\n    return 1\n\n\ndef two():\n    return 2\n\n\ndef three():\n    return 3\n"


def test_run_limit_indexes_files_in_path_order_and_reports_the_rest(settings, make_repo) -> None:
    runtime = Runtime(replace(settings, max_run_units=7))
    try:
        repo = make_repo()
        for name in ("a.py", "b.py", "c.py", "d.py"):
            repo.write(f"src/{name}", MODULE)
        repo.commit("four files of three functions")
        report = index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha)
        reason = "not indexed: the run reached its limit of 7 units (RAGCODE_MAX_RUN_UNITS)"
        assert report.files_skipped == [{"path": "src/c.py", "reason": reason}, {"path": "src/d.py", "reason": reason}]
        assert {ref.path for ref in runtime.store.refs(APP.id, "main")} == {"src/a.py", "src/b.py"}
        assert report.functions_total == 6

        again = index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha, full=True)
        assert again.files_skipped == report.files_skipped and again.functions_total == 6  # deterministic

        repo.write("src/c.py", MODULE + "\n\ndef four():\n    return 4\n")
        repo.commit("a push that fits")
        pushed = index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha)
        assert pushed.files_skipped == [] and pushed.functions_total == 10
    finally:
        runtime.close()


def test_run_character_limit(settings, make_repo) -> None:
    runtime = Runtime(replace(settings, max_run_unit_chars=100))
    try:
        repo = make_repo()
        repo.write("a.py", "def one():\n    return 1\n")
        repo.write("b.py", "def two():\n    return '" + "2" * 100 + "'\n")
        repo.commit("two files")
        report = index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha)
        assert report.files_skipped == [{"path": "b.py", "reason": "not indexed: the run reached its limit of 100 "
                                                                   "characters (RAGCODE_MAX_RUN_UNIT_CHARS)"}]
    finally:
        runtime.close()


def test_hostile_files_are_reported_and_the_rest_indexed(runtime, make_repo) -> None:
    repo = make_repo()
    repo.write("public/app.js", single_line_bundle(185 * 1024))
    repo.write("src/nest.js", nested_one_line_js(13_000))
    repo.write("src/tiny.js", "".join(f"const a{i} = () => {i};\n" for i in range(18_000)))
    repo.write("src/million.js", "a=()=>0\n" * 1_000_000)
    repo.write("src/ids.py", f"def {'x' * 70_000}(value):\n    return value\n")
    repo.write("src/deep.py", deep_python(400))
    repo.write("src/ok.py", MODULE)
    repo.commit("hostile")
    report = index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha)
    skipped = {item["path"]: item["reason"] for item in report.files_skipped}
    assert skipped == {
        "public/app.js": MINIFIED,
        "src/nest.js": MINIFIED,
        "src/tiny.js": "more than 2000 units (RAGCODE_MAX_FILE_UNITS)",
        "src/million.js": "larger than 524288 bytes",
        "src/deep.py": "its units hold more than 2097152 characters (RAGCODE_MAX_FILE_UNIT_CHARS)",
    }
    documents = runtime.store.documents(APP.id, "main", [ref.id for ref in runtime.store.refs(APP.id, "main")])
    assert {d.path for d in documents} == {"src/ids.py", "src/ok.py"}
    assert all(len(d.code) <= LIMITS.unit_chars and len(d.name.split("#")[0]) <= MAX_NAME_CHARS for d in documents)
    assert sum(len(d.code) for d in documents) < 100_000


# -- model and embedder inputs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_bundled_embedder_input_is_cut_to_its_window(embedder: LocalEmbedder) -> None:
    short = "세션에 어댑터를 등록한다"
    assert embedder.fit(short) == short
    hostile = "x" * 70_000 + " 장바구니 총액을 계산한다 " * 2_000
    fitted = embedder.fit(hostile)
    assert hostile.startswith(fitted) and 500 < len(fitted) < 8_192
    tokens = embedder._model.token_count(fitted)  # noqa: SLF001 - the engine's own tokenizer is the judge
    assert tokens <= MAX_TOKENS and embedder._model.token_count(hostile[: len(fitted) + 20]) > MAX_TOKENS  # noqa: SLF001
    query = embedder.fit(hostile, query=True)
    assert embedder._model.token_count(query, True) <= MAX_TOKENS  # noqa: SLF001
    vectors = embedder.embed_documents([hostile, fitted])
    assert vectors.shape == (2, 384) and (vectors[0] == vectors[1]).all()  # the same input, so the cache holds
    assert (embedder.embed_query(hostile) == embedder.embed_query(query)).all()


def test_summary_prompt_is_bounded() -> None:
    unit = Unit("a/" * 3_000 + "x.py", "python", "function", "n" * 70_000, 1, 2, "y = 1\n" * 200_000,
                context="class C:\n" * 50_000)
    _, user = summary_messages(unit, "en")
    assert len(user) <= MAX_UNIT_CHARS + MAX_UNIT_CONTEXT_CHARS + 2 * MAX_FIELD_CHARS + 1_000
    assert f"Name: {'n' * (MAX_FIELD_CHARS - 1)}…" in user


def test_generation_prompt_is_bounded_however_many_and_long_the_hits() -> None:
    def hit(i: int) -> Hit:
        doc = Document(id=str(i), repo_id=APP.id, branch="main", path="p" * 5_000, name="n" * 70_000, kind="function",
                       language="python", start_line=1, end_line=2, code="z = 1\n" * 10_000, content_hash="h",
                       summary="s " * 50_000)
        return Hit(doc, 0.9)

    _, user = generation_messages("r" * 1_000_000, [hit(i) for i in range(50)], "en", "acme/app")
    assert len(user) <= MAX_CONTEXT_CHARS + MAX_REQUEST_CHARS + 1_000
    assert "[1]" in user and user.count("</references>") == 1


def test_model_summaries_and_embedding_texts_are_bounded() -> None:
    assert len(parse_summary("<summary>" + "word " * 200_000 + "</summary>")) == MAX_SUMMARY_CHARS
    unit = chunk_file("ids.py", f"def {'q' * 70_000}(value):\n    return value\n")[0]
    text = embedding_text(unit.name, extractive_summary(unit, "en"))
    assert len(text) <= 3_000
