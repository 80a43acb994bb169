"""Retrieval quality: CodeSearchNet-style English queries (ragcode vs plain BM25) and a Korean query set.

English: real packages' wheels (pinned) are downloaded into ``benchmarks/.cache``, every docstring is stripped
from the code, the stripped tree is committed and indexed with ``ragcode index`` (offline summaries, bundled
embedder), and each docstring's first sentence is the query for its function. The baseline is SQLite FTS5 BM25
(``unicode61``) over the same functions' stripped code. Korean: ``benchmarks/korean_corpus`` (Korean doc
comments) indexed together with the first package as distractors, queried with ``benchmarks/korean_queries.jsonl``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bot.indexer import pipeline  # noqa: E402
from bot.store import local  # noqa: E402

CACHE = HERE / ".cache"
KOREAN_CORPUS = HERE / "korean_corpus"
KOREAN_QUERIES = HERE / "korean_queries.jsonl"
PACKAGES = (  # (distribution, version); the first also serves as the Korean set's distractors
    ("requests", "2.32.3"),
    ("click", "8.1.7"),
    ("attrs", "24.2.0"),
    ("jinja2", "3.1.4"),
    ("werkzeug", "3.0.4"),
    ("itsdangerous", "2.2.0"),
    ("markdown", "3.7"),
    ("humanize", "4.10.0"),
    ("arrow", "1.3.0"),
    ("tqdm", "4.66.5"),
)
ENGLISH_REPO = "bench/english"
KOREAN_REPO = "bench/korean"
K = 10
TARGET_RATIO = 1.2
_TRIVIAL_START = re.compile(r"^(:|\.\.|>>>|see\b|alias\b|same as\b|deprecated\b)", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\s:(?:param|type|returns?|rtype|raises)\b")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Function:
    """One function of the stripped corpus: where it is and its stripped code."""

    path: str
    qualname: str
    line: int
    code: str


@dataclass
class Query:
    """One query and the functions that answer it."""

    id: str
    text: str
    targets: list[tuple[str, str, int]] = field(default_factory=list)  # (path, qualname, def line)


def log(message: str) -> None:
    """Progress on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


# -- corpus ------------------------------------------------------------------------------------------------------
def download(name: str, version: str) -> Path:
    """The package's wheel, downloaded into the cache once."""
    folder = CACHE / "dist" / f"{name}-{version}"
    wheels = sorted(folder.glob("*.whl"))
    if wheels:
        return wheels[0]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
               "--disable-pip-version-check", "--dest", str(folder), f"{name}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode or not wheels:
        sys.exit(f"bench_quality: cannot download {name}=={version} (offline and not cached?)\n{result.stderr}")
    return wheels[0]


def wheel_sources(wheel: Path) -> Iterator[tuple[str, str]]:
    """``(path, source)`` of every Python file of the wheel's packages."""
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            if member.endswith(".py") and ".dist-info/" not in member and ".data/" not in member:
                yield member, archive.read(member).decode("utf-8")


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


class _StripDocstrings(ast.NodeTransformer):
    """Removes module, class and function docstrings; an emptied body becomes ``pass``."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and _docstring_node(node) is not None:
            node.body = node.body[1:] or [ast.Pass()]
        return node


def _walk_functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its ``__qualname__`` (``Class.method``, ``outer.<locals>.inner``)."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                yield qualname, child
                stack.append((qualname + ".<locals>.", child))
            elif isinstance(child, ast.ClassDef):
                stack.append((prefix + child.name + ".", child))
            else:
                stack.append((prefix, child))


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence, whitespace collapsed."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    return _SENTENCE.split(text, maxsplit=1)[0].strip()


def usable_query(sentence: str) -> bool:
    """False for trivial first sentences: fewer than 4 words, or a reference rather than a description."""
    words = sentence.split()
    return len(words) >= 4 and not _TRIVIAL_START.match(sentence)


def strip_module(path: str, source: str) -> tuple[str, list[Function], dict[tuple[str, int], str]]:
    """Docstring-free source, its functions, and ``(qualname, def line) -> first docstring sentence``."""
    tree = ast.parse(source)
    ordered = [(qualname, _docstring_node(node)) for qualname, node in _walk_functions(tree)]
    stripped = ast.unparse(_StripDocstrings().visit(tree)) + "\n"
    new_tree = ast.parse(stripped)
    lines = stripped.splitlines()
    functions: list[Function] = []
    sentences: dict[tuple[str, int], str] = {}
    for (qualname, doc), (new_qualname, node) in zip(ordered, _walk_functions(new_tree), strict=True):
        assert qualname == new_qualname, (path, qualname, new_qualname)
        start = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
        functions.append(Function(path, qualname, node.lineno, "\n".join(lines[start - 1 : node.end_lineno])))
        if doc is not None:
            sentences[(qualname, node.lineno)] = first_sentence(ast.get_docstring(ast.Module([doc], [])) or "")
    return stripped, functions, sentences


def write_tree(folder: Path, files: dict[str, str]) -> None:
    """Make ``folder`` hold exactly ``files`` (other files removed, unchanged ones left alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    for existing in folder.rglob("*"):
        relative = existing.relative_to(folder).as_posix()
        if existing.is_file() and not relative.startswith(".git/") and relative not in files:
            existing.unlink()
    for relative, text in files.items():
        target = folder / relative
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")


def commit_tree(folder: Path) -> str:
    """Commit the folder's content (a new git repository the first time); the HEAD commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                               "-c", "commit.gpgsign=false", *args], cwd=folder, check=True, capture_output=True,
                              text=True).stdout.strip()

    if not (folder / ".git").is_dir():
        git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    if git("status", "--porcelain"):
        git("commit", "--quiet", "--message", "benchmark corpus")
    return git("rev-parse", "HEAD")


def build_english() -> tuple[list[Function], list[Query], dict[str, str], int]:
    """The stripped English corpus: functions, deduplicated queries, the first package's original files."""
    files: dict[str, str] = {}
    functions: list[Function] = []
    by_text: dict[str, Query] = {}
    distractors: dict[str, str] = {}
    documented = 0
    for number, (name, version) in enumerate(PACKAGES):
        for path, source in wheel_sources(download(name, version)):
            if number == 0:
                distractors[path] = source
            stripped, found, sentences = strip_module(path, source)
            files[path] = stripped
            functions.extend(found)
            documented += len(sentences)
            for (qualname, line), sentence in sentences.items():
                if usable_query(sentence):
                    query = by_text.setdefault(sentence, Query(id="", text=sentence))
                    query.targets.append((path, qualname, line))
    write_tree(CACHE / "repos" / "english", files)
    queries = list(by_text.values())
    for number, query in enumerate(queries, 1):
        query.id = f"en-{number}"
    return functions, queries, distractors, documented


def build_korean(distractors: dict[str, str]) -> list[Query]:
    """The Korean corpus plus distractor files in one tree, and its queries."""
    files = {path.relative_to(KOREAN_CORPUS).as_posix(): path.read_text(encoding="utf-8")
             for path in sorted(KOREAN_CORPUS.rglob("*")) if path.is_file()}
    write_tree(CACHE / "repos" / "korean", {**distractors, **files})
    queries = []
    for line in KOREAN_QUERIES.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            queries.append(Query(id=item["id"], text=item["query"], targets=[(item["path"], item["name"], 0)]))
    return queries


# -- ragcode -----------------------------------------------------------------------------------------------------
def index_home() -> Path:
    """The RAGCODE_HOME for the current index-time code: a change to what gets summarized, embedded or written to
    the FTS index gives a fresh home (query-time code such as fusion or BM25 weights does not)."""
    digest = hashlib.sha256()
    for relative in ("bot/llm/offline.py", "bot/text.py", "bot/indexer/chunker.py", "bot/embed/local.py"):
        digest.update((ROOT / relative).read_bytes())
    for source in (inspect.getsource(pipeline.embedding_text), inspect.getsource(local._fts_row), local._SCHEMA):
        digest.update(source.encode())
    return CACHE / "home" / digest.hexdigest()[:12]


def seed_vectors(home: Path) -> None:
    """Give a fresh home the embeddings of earlier homes (keyed by embedded text), so only new texts are embedded."""
    database = home / "index" / "ragcode.sqlite3"
    if database.exists():
        return
    earlier = sorted((path for path in (CACHE / "home").glob("*/index/ragcode.sqlite3")),
                     key=lambda path: path.stat().st_mtime, reverse=True)
    local.LocalStore(database.parent).close()
    if earlier:
        db = sqlite3.connect(database)
        db.execute("ATTACH DATABASE ? AS earlier", (str(earlier[0]),))
        with db:
            db.execute("INSERT OR IGNORE INTO vector_cache SELECT * FROM earlier.vector_cache")
        db.close()


def ragcode(home: Path, *args: str, min_score: str | None = None) -> str:
    """Run the ``ragcode`` CLI with an offline LLM and the local embedder; its stdout."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAGCODE_", "OPENSEARCH_"))}
    env.update(RAGCODE_HOME=str(home), RAGCODE_LLM="offline", RAGCODE_EMBEDDER="local", RAGCODE_STORE="local",
               PYTHONPATH=str(ROOT))
    env.setdefault("OMP_NUM_THREADS", "1")  # the embedder's OpenMP threads thrash on a busy 2-core machine
    if min_score is not None:
        env["RAGCODE_MIN_SCORE"] = min_score
    result = subprocess.run([sys.executable, "-m", "bot", *args], cwd=CACHE, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"bench_quality: ragcode {args[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def index(home: Path, folder: Path, repo: str) -> dict:
    """Index (incrementally) the committed folder; the ``index --json`` report."""
    commit_tree(folder)
    return json.loads(ragcode(home, "index", str(folder), "--repo", repo, "--json").strip().splitlines()[-1])


def search(home: Path, repo: str, queries: list[Query]) -> dict[str, list[dict]]:
    """Top-``K`` results per query id, without a score threshold."""
    file = CACHE / f"queries-{repo.replace('/', '-')}.jsonl"
    file.write_text("".join(json.dumps({"id": q.id, "query": q.text}, ensure_ascii=False) + "\n" for q in queries),
                    encoding="utf-8")
    output = ragcode(home, "search", "--queries", str(file), "--repo", repo, "-k", str(K), "--json", min_score="0")
    return {item["id"]: item["results"] for item in map(json.loads, output.splitlines())}


def is_relevant(result: dict, targets: Iterable[tuple[str, str, int]]) -> bool:
    """Same path, and the same qualified name or a part of the function whose lines hold its ``def`` line."""
    base = result["name"].split("#")[0]
    for path, qualname, line in targets:
        if result["path"] != path:
            continue
        if base == qualname:
            return True
        if result["start_line"] <= line <= result["end_line"] and base.rsplit(".", 1)[-1] == qualname.rsplit(".")[-1]:
            return True
    return False


# -- baseline ----------------------------------------------------------------------------------------------------
def bm25_rankings(functions: list[Function], queries: list[Query]) -> dict[str, list[dict]]:
    """Plain BM25: FTS5 ``unicode61`` over each function's stripped code, the query words OR-ed."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE functions USING fts5(code)")
    db.executemany("INSERT INTO functions (rowid, code) VALUES (?, ?)",
                   [(number, function.code) for number, function in enumerate(functions)])
    rankings: dict[str, list[dict]] = {}
    for query in queries:
        words = list(dict.fromkeys(word.lower() for word in _WORD.findall(query.text)))
        rows = db.execute("SELECT rowid FROM functions WHERE functions MATCH ? ORDER BY bm25(functions) LIMIT ?",
                          (" OR ".join(f'"{word}"' for word in words), K)).fetchall() if words else []
        rankings[query.id] = [{"path": functions[r].path, "name": functions[r].qualname,
                               "start_line": functions[r].line, "end_line": functions[r].line} for (r,) in rows]
    return rankings


# -- figures -----------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    """Rank metrics of one system on one query set, and the scores of relevant and other results."""

    mrr: float
    recall: dict[int, float]
    relevant_scores: list[float]
    other_scores: list[float]
    top_scores: list[tuple[float, bool]]


def evaluate(queries: list[Query], rankings: dict[str, list[dict]]) -> Figures:
    """MRR@K and recall@1/5/10 (the share of queries with a relevant result in the top k)."""
    reciprocal = 0.0
    found_at: list[int | None] = []
    relevant_scores: list[float] = []
    other_scores: list[float] = []
    top_scores: list[tuple[float, bool]] = []
    for query in queries:
        results = rankings.get(query.id, [])[:K]
        flags = [is_relevant(result, query.targets) for result in results]
        rank = flags.index(True) + 1 if True in flags else None
        found_at.append(rank)
        reciprocal += 1 / rank if rank else 0.0
        for result, flag in zip(results, flags, strict=True):
            if "score" in result:
                (relevant_scores if flag else other_scores).append(result["score"])
        if results and "score" in results[0]:
            top_scores.append((results[0]["score"], flags[0]))
    count = max(len(queries), 1)
    recall = {k: sum(1 for rank in found_at if rank and rank <= k) / count for k in (1, 5, 10)}
    return Figures(reciprocal / count, recall, relevant_scores, other_scores, top_scores)


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))] if ordered else float("nan")


def threshold_table(sets: dict[str, Figures]) -> float:
    """Print how each candidate ``min_score`` treats relevant and other results; the suggested threshold.

    The suggestion is the highest threshold that keeps at least 95% of the relevant results found in the top 10
    of every query set (the threshold should cut noise, not answers).
    """
    print("\nscore distribution (top-10 results, RAGCODE_MIN_SCORE=0)")
    for label, figures in sets.items():
        rel, other = figures.relevant_scores, figures.other_scores
        print(f"  {label:<8} relevant n={len(rel):<5} p10 {percentile(rel, .1):.3f} median {percentile(rel, .5):.3f}"
              f" | other n={len(other):<6} median {percentile(other, .5):.3f} p90 {percentile(other, .9):.3f}")
    header = "  ".join(f"{label}: rel kept / other kept / top-1 prec" for label in sets)
    print(f"  min_score  {header}")
    suggested = 0.0
    for step in range(70, 93):
        threshold = step / 100
        cells, keeps = [], []
        for figures in sets.values():
            kept = sum(score >= threshold for score in figures.relevant_scores) / max(len(figures.relevant_scores), 1)
            dropped = sum(score >= threshold for score in figures.other_scores) / max(len(figures.other_scores), 1)
            tops = [flag for score, flag in figures.top_scores if score >= threshold]
            precision = sum(tops) / len(tops) if tops else float("nan")
            cells.append(f"{kept:6.1%} / {dropped:6.1%} / {precision:6.1%}{'':>12}")
            keeps.append(kept)
        if min(keeps) >= 0.95:
            suggested = threshold
        print(f"  {threshold:.2f}       {'  '.join(cells)}")
    print(f"  suggested min_score: {suggested:.2f} (highest keeping >= 95% of relevant top-10 results in every set)")
    return suggested


def main() -> int:
    """Build the corpora, index them, run both query sets and print the figures."""
    started = time.monotonic()
    CACHE.mkdir(exist_ok=True)
    log("preparing corpora")
    functions, english_queries, distractors, documented = build_english()
    korean_queries = build_korean(distractors)
    prepared = time.monotonic()
    home = index_home()
    seed_vectors(home)
    log(f"indexing into {home} (a first run embeds a few thousand functions: minutes)")
    english_report = index(home, CACHE / "repos" / "english", ENGLISH_REPO)
    korean_report = index(home, CACHE / "repos" / "korean", KOREAN_REPO)
    indexed = time.monotonic()
    log("searching")
    english = evaluate(english_queries, search(home, ENGLISH_REPO, english_queries))
    korean = evaluate(korean_queries, search(home, KOREAN_REPO, korean_queries))
    baseline = evaluate(english_queries, bm25_rankings(functions, english_queries))
    searched = time.monotonic()

    ratio = english.mrr / baseline.mrr if baseline.mrr else float("inf")
    print(f"English corpus: {len(PACKAGES)} packages ({', '.join(f'{n}=={v}' for n, v in PACKAGES)}), "
          f"{len(functions)} functions ({documented} with docstrings, all stripped), "
          f"{english_report['functions_total']} ragcode units; {len(english_queries)} queries")
    print(f"Korean corpus: {len(list(KOREAN_CORPUS.rglob('*.*')))} files + {len(distractors)} distractor files "
          f"({PACKAGES[0][0]}), {korean_report['functions_total']} ragcode units; {len(korean_queries)} queries. "
          "Offline mode: the Korean summaries are the extractive summaries (Korean template + the doc comment).")
    threshold_table({"English": english, "Korean": korean})
    print(f"\n{'':<28}{'MRR@10':>8}{'R@1':>8}{'R@5':>8}{'R@10':>8}")
    for label, figures in (("English ragcode", english), ("English BM25 (code)", baseline),
                           ("Korean ragcode", korean)):
        print(f"{label:<28}{figures.mrr:8.3f}" + "".join(f"{figures.recall[k]:8.3f}" for k in (1, 5, 10)))
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ratio ragcode/BM25 MRR@10: {ratio:.2f} ({verdict} the {TARGET_RATIO}x target)")
    print(f"Korean recall@5: {korean.recall[5]:.3f}  MRR@10: {korean.mrr:.3f}")
    print(f"time: {searched - started:.0f}s (corpora {prepared - started:.0f}s, index {indexed - prepared:.0f}s "
          f"[{english_report['seconds']:.0f}s + {korean_report['seconds']:.0f}s], search {searched - indexed:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
