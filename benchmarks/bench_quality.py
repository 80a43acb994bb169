"""Retrieval quality with two embedders of very different scales: ranking, the relevance cut, test demotion.

Embedder A is the bundled multilingual-e5 (cosines packed near 0.8-0.9); embedder B is the stand-in Titan's hashed
bag of words (``tests/bedrock_standin.py``, cosines of relevant pairs ~0.2-0.5), run in-process. Both index and
answer the same corpora with offline summaries:

- English (CodeSearchNet style): real packages' wheels (pinned) are downloaded into ``benchmarks/.cache``, every
  docstring is stripped from the code, and each docstring's first sentence is the query for its function. The
  baseline is SQLite FTS5 BM25 (``unicode61``) over the same functions' stripped code.
- Korean: ``benchmarks/korean_corpus`` (Korean doc comments) with the first package as distractors, queried with
  ``benchmarks/korean_queries.jsonl``.
- httpx 0.27.0 from its source distribution, tests included (docstrings stripped): the implementation's docstring
  sentences are the queries and the implementation the target, so a test ranking first is a miss.

Out-of-scope requests (a Kalman filter for spacecraft attitude, and others no corpus implements) are asked of every
corpus: with the calibrated cut they should get no result at all.

The call graph (callers and callees recorded at index time) is measured two ways: as extra candidates (the direct
callers and callees of the top three results scored like any candidate, by their calibrated similarity to the
query, then ranked with the rest), and as what answers actually get, the related functions listed beside the top
ten: how often the target is among the top ten or those related functions. Figures go to stdout, progress to
stderr.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import git
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bot.commands.calibrate import calibration  # noqa: E402
from bot.commands.related import related  # noqa: E402
from bot.commands.retrieve import order_tests, relevant, retrieve, score_of  # noqa: E402
from bot.commands.testcode import is_test_code  # noqa: E402
from bot.commands.views import View  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.documents import Hit, Repository  # noqa: E402
from bot.embed.bedrock import normalized  # noqa: E402
from bot.indexer import pipeline  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.store import local  # noqa: E402
from bot.text import has_hangul  # noqa: E402
from tests import bedrock_standin  # noqa: E402

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
HTTPX = ("httpx", "0.27.0")  # from its sdist, which includes the tests
ENGLISH_REPO = Repository.local("bench/english")
KOREAN_REPO = Repository.local("bench/korean")
HTTPX_REPO = Repository.local("bench/httpx")
RELATED = 6  # the default RAGCODE_RELATED
SEEDS = 3  # results whose callers and callees are taken (bot/commands/related.py)
K = 10
TARGET_RATIO = 1.2
KALMAN = "a Kalman filter for spacecraft attitude"
OUT_OF_SCOPE = (  # nothing in any corpus does these
    KALMAN, "train a convolutional neural network on labelled images", "compute the eigenvalues of a sparse matrix",
    "render a 3D mesh with shadows and textures", "align DNA sequences with the Smith-Waterman algorithm",
    "simulate rigid body physics with collisions", "decode an MP3 audio stream into PCM samples",
    "solve a sudoku puzzle by backtracking", "control a robot arm with inverse kinematics",
    "compress a video with the H.264 codec", "compute the orbit of a satellite from its two-line elements",
    "detect faces in a webcam image", "fit a linear regression model with gradient descent",
    "play a chess move using minimax search", "compute the shortest path between two cities with Dijkstra",
    "generate a Mandelbrot fractal image", "mine a block of a proof-of-work blockchain",
    "transpose a musical melody to another key", "estimate the pose of a hand in a depth camera frame",
    "schedule nurses to hospital shifts with integer programming", "compile a shader for the GPU",
    "forecast tomorrow's weather from barometric pressure", "steer an autonomous car between lane markings",
    "calculate the trajectory of a cannonball with air drag", "simulate predator and prey populations",
    "recognize handwritten digits", "translate English text to French with a neural model",
    "balance an inverted pendulum with a PID controller", "compute the folding energy of a protein",
    "detect the beats per minute of a song",
    "우주선 자세 제어용 칼만 필터", "이미지 분류용 합성곱 신경망 학습 코드", "3차원 메시에 그림자 렌더링하는 함수",
    "DNA 염기서열 정렬 알고리즘", "로봇 팔 역기구학 계산", "스도쿠 퍼즐을 백트래킹으로 푸는 코드", "위성 궤도를 궤도 요소로 계산",
    "MP3 오디오를 PCM으로 디코딩", "체스에서 최선의 수를 미니맥스로 찾는 함수", "만델브로 프랙털 그리기",
    "자율주행 차량의 차선 인식", "손글씨 숫자 인식 모델", "기압으로 내일 날씨를 예측하는 코드", "노래의 템포 측정",
    "역진자 균형을 PID로 제어",
)
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


def download_sdist(name: str, version: str) -> Path:
    """The package's source distribution, downloaded into the cache once."""
    folder = CACHE / "dist" / f"{name}-{version}-sdist"
    archives = sorted(folder.glob("*.tar.gz"))
    if archives:
        return archives[0]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               "--disable-pip-version-check", "--dest", str(folder), f"{name}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(folder.glob("*.tar.gz"))
    if result.returncode or not archives:
        sys.exit(f"bench_quality: cannot download the sdist of {name}=={version}\n{result.stderr}")
    return archives[0]


def build_httpx() -> tuple[list[Query], int]:
    """httpx's package and tests, docstrings stripped, and queries from the package's docstrings; the test count."""
    files: dict[str, str] = {}
    by_text: dict[str, Query] = {}
    tests = 0
    with tarfile.open(download_sdist(*HTTPX)) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            path = member.name.split("/", 1)[-1]
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is None or not path.endswith(".py") or not path.startswith(("httpx/", "tests/")):
                continue
            stripped, found, sentences = strip_module(path, handle.read().decode("utf-8"))
            files[path] = stripped
            tests += sum(is_test_code(function.path, function.qualname) for function in found)
            if is_test_code(path, ""):
                continue
            for (qualname, line), sentence in sentences.items():
                if usable_query(sentence):
                    by_text.setdefault(sentence, Query(id="", text=sentence)).targets.append((path, qualname, line))
    write_tree(CACHE / "repos" / "httpx", files)
    queries = list(by_text.values())
    for number, query in enumerate(queries, 1):
        query.id = f"httpx-{number}"
    return queries, tests


# -- ragcode -----------------------------------------------------------------------------------------------------
def index_home() -> Path:
    """The RAGCODE_HOME for the current index-time code: a change to what gets summarized, embedded or written to
    the FTS index gives a fresh home (query-time code such as fusion or BM25 weights does not)."""
    digest = hashlib.sha256()
    for relative in ("bot/llm/offline.py", "bot/text.py", "bot/indexer/chunker.py", "bot/indexer/tags.py",
                     "bot/embed/local.py", *sorted(str(path.relative_to(ROOT))
                                                   for path in (ROOT / "bot/indexer/queries").glob("*.scm"))):
        digest.update((ROOT / relative).read_bytes())
    for source in (inspect.getsource(pipeline.embedding_text), inspect.getsource(local._fts_rows), local._SCHEMA):
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


class BagOfWordsEmbedder:
    """Embedder B: the stand-in Titan's hashed bag of words (``tests/bedrock_standin.py``), normalized, in-process."""

    dimension = 1024
    name = f"standin-bag-of-words:{dimension}"

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalized(np.vstack([bedrock_standin.standin_vector(text, self.dimension) for text in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one query."""
        vector: np.ndarray = self.embed_documents([text])[0]
        return vector

    def close(self) -> None:
        """Nothing to release: it runs in-process."""


EMBEDDERS = {"A: bundled e5": None, "B: bag of words": BagOfWordsEmbedder}


def runtime_for(label: str) -> Runtime:
    """A runtime with offline summaries and the embedder ``label``, its store in a home for the index-time code."""
    home = index_home()
    embedder = EMBEDDERS[label]
    if embedder is not None:
        home = home.with_name(home.name + "-" + hashlib.sha256(inspect.getsource(bedrock_standin.standin_vector)
                                                               .encode()).hexdigest()[:8])
    seed_vectors(home)
    runtime = Runtime(Settings(home=home, llm="offline"))
    if embedder is not None:
        runtime.embedder = embedder()  # the runtime's embedder is injected here
    return runtime


def index(runtime: Runtime, folder: Path, repo: Repository) -> int:
    """Index (incrementally) the committed folder; how many units the branch holds."""
    commit = commit_tree(folder)
    state = runtime.store.branch_state(repo.id, "main")
    if state is None or state.commit != commit:
        report = pipeline.index_branch(runtime, git.Repo(folder), repo, "main", commit)
        log(f"  {repo.name}: {report.functions_total} units in {report.seconds:.0f}s")
    return len(runtime.store.refs(repo.id, "main"))


def ask(runtime: Runtime, repo: Repository, queries: Sequence[Query]) -> dict[str, list[Hit]]:
    """Every candidate of each query by score: no cut and tests as ranked (the figures apply both themselves)."""
    return {query.id: retrieve(runtime, repo.id, "main", query.text, k=runtime.settings.candidates, min_score=0.0,
                               tests="include") for query in queries}


def results(hits: list[Hit]) -> list[dict]:
    """Hits as the result dicts the metrics read."""
    return [{"path": hit.document.path, "name": hit.document.name, "start_line": hit.document.start_line,
             "end_line": hit.document.end_line, "test": is_test_code(hit.document.path, hit.document.name)}
            for hit in hits]


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
    """Rank metrics of one system on one query set, and what the relevance cut let through."""

    mrr: float
    recall: dict[int, float]
    test_first: float = float("nan")  # share of queries whose first result is test code
    answered: float = float("nan")  # share of queries with at least one result after the cut
    recall_cut: float = float("nan")  # recall@10 of what the cut lets through


def rank_figures(queries: list[Query], rankings: dict[str, list[dict]]) -> Figures:
    """MRR@K and recall@1/5/10 (the share of queries with a relevant result in the top k)."""
    reciprocal = 0.0
    found_at: list[int | None] = []
    test_first = 0
    for query in queries:
        results = rankings.get(query.id, [])[:K]
        flags = [is_relevant(result, query.targets) for result in results]
        rank = flags.index(True) + 1 if True in flags else None
        found_at.append(rank)
        reciprocal += 1 / rank if rank else 0.0
        test_first += bool(results) and bool(results[0].get("test"))
    count = max(len(queries), 1)
    recall = {k: sum(1 for rank in found_at if rank and rank <= k) / count for k in (1, 5, 10)}
    return Figures(reciprocal / count, recall, test_first / count)


def evaluate(queries: list[Query], answers: dict[str, list[Hit]], tests: str) -> Figures:
    """Rank metrics with test code ranked per ``tests``, and what the calibrated cut lets through."""
    cut = {query_id: order_tests(relevant(hits, None), tests)[:K] for query_id, hits in answers.items()}
    figures = rank_figures(queries, {query_id: results(order_tests(hits, tests)) for query_id, hits in answers.items()})
    figures.answered = sum(bool(cut[query.id]) for query in queries) / max(len(queries), 1)
    figures.recall_cut = rank_figures(queries, {query_id: results(hits) for query_id, hits in cut.items()}).recall[10]
    return figures


@dataclass
class GraphFigures:
    """What the call graph does for one query set."""

    with_candidates: Figures  # callers and callees of the top results added as candidates, ranked with the rest
    added_per_query: float  # candidates the call graph added (not among the candidates already) per query
    entered_top: float  # share of queries where one of them entered the top ten
    covered: float  # share of queries with a target in the top ten
    covered_related: float  # share of queries with a target in the top ten or among its related functions
    rescued: float  # of the queries whose top ten misses every target, the share whose related functions hold one
    related_per_query: float  # related functions found per query (at most RELATED)


def call_graph(runtime: Runtime, repo: Repository, queries: list[Query], answers: dict[str, list[Hit]],
               tests: str) -> GraphFigures:
    """Callers and callees of the best results: as extra candidates, and as the related functions of an answer."""
    store, view = runtime.store, [View("main")]
    ranked: dict[str, list[dict]] = {}
    covered = covered_related = rescued = missed = found = added = entered = 0
    for query in queries:
        hits = order_tests(answers[query.id], tests)
        near = related(store, repo.id, view, hits[:K], RELATED)
        found += len(near)
        in_top = any(is_relevant(result, query.targets) for result in results(hits[:K]))
        in_near = any(is_relevant(result, query.targets) for result in results(near))
        covered += in_top
        covered_related += in_top or in_near
        missed += not in_top
        rescued += not in_top and in_near
        known = {hit.document.id for hit in hits}
        extra = [hit for hit in related(store, repo.id, view, hits[:SEEDS], 4 * RELATED)
                 if hit.document.vector is not None and hit.document.id not in known]
        if extra:
            vector = runtime.embedder.embed_query(query.text)
            similarity = np.vstack([hit.document.vector for hit in extra]) @ vector
            z = calibration(runtime, repo.id, "main", vector.shape[-1]).standardize(vector, similarity)
            extra = [Hit(document=hit.document, score=round(score_of(float(value)), 4))
                     for hit, value in zip(extra, z, strict=True)]
        merged = order_tests(sorted([*answers[query.id], *extra], key=lambda hit: -hit.score), tests)
        ranked[query.id] = results(merged)
        added += len(extra)
        entered += any(hit.document.id not in known for hit in merged[:K])
    count = max(len(queries), 1)
    return GraphFigures(rank_figures(queries, ranked), added / count, entered / count, covered / count,
                        covered_related / count, rescued / max(missed, 1), found / count)


def refused(answers: dict[str, list[Hit]]) -> float:
    """The share of (out-of-scope) queries that the calibrated cut leaves without any result."""
    return sum(not relevant(hits, None) for hits in answers.values()) / max(len(answers), 1)


def main() -> int:
    """Build the corpora, index them with both embedders, run every query set and print the figures."""
    started = time.monotonic()
    CACHE.mkdir(exist_ok=True)
    log("preparing corpora")
    functions, english_queries, distractors, documented = build_english()
    korean_queries = build_korean(distractors)
    httpx_queries, httpx_tests = build_httpx()
    out_of_scope = [Query(id=f"oos-{number}", text=text) for number, text in enumerate(OUT_OF_SCOPE, 1)]
    baseline = rank_figures(english_queries, bm25_rankings(functions, english_queries))
    rows: list[tuple[str, str, Figures, float]] = []
    graphs: list[tuple[str, str, Figures, GraphFigures]] = []
    kalman: dict[str, bool] = {}
    sizes: dict[str, int] = {}
    for label in EMBEDDERS:
        runtime = runtime_for(label)
        log(f"embedder {label}: indexing (the first run embeds thousands of functions: minutes), then searching")
        tests = runtime.settings.tests
        for name, repo, folder, queries in (("English", ENGLISH_REPO, "english", english_queries),
                                            ("Korean", KOREAN_REPO, "korean", korean_queries),
                                            ("httpx", HTTPX_REPO, "httpx", httpx_queries)):
            sizes[name] = index(runtime, CACHE / "repos" / folder, repo)
            answers = ask(runtime, repo, queries)
            outside = ask(runtime, repo, out_of_scope)
            if repo != KOREAN_REPO:  # the Korean corpus has no tests
                rows.append((label, f"{name} (tests: include)", evaluate(queries, answers, "include"), refused(outside)))
            rows.append((label, f"{name} (tests: {tests})" if repo != KOREAN_REPO else name,
                         evaluate(queries, answers, tests), refused(outside)))
            graphs.append((label, name, rows[-1][2], call_graph(runtime, repo, queries, answers, tests)))
            if repo == HTTPX_REPO:
                kalman[label] = not relevant(outside["oos-1"], None)
        runtime.close()
    searched = time.monotonic()

    print(f"English corpus: {len(PACKAGES)} packages ({', '.join(f'{n}=={v}' for n, v in PACKAGES)}), "
          f"{len(functions)} functions ({documented} with docstrings, all stripped), "
          f"{sizes['English']} ragcode units; {len(english_queries)} queries")
    print(f"Korean corpus: {len(list(KOREAN_CORPUS.rglob('*.*')))} files + {len(distractors)} distractor files "
          f"({PACKAGES[0][0]}), {sizes['Korean']} ragcode units; {len(korean_queries)} queries. "
          "Offline mode: the Korean summaries are the extractive summaries (Korean template + the doc comment).")
    print(f"httpx corpus: httpx=={HTTPX[1]} sdist, package and tests ({httpx_tests} test functions), docstrings "
          f"stripped, {sizes['httpx']} ragcode units; {len(httpx_queries)} queries from the package's docstrings "
          "(target: the implementation)")
    korean = sum(map(has_hangul, OUT_OF_SCOPE))
    print(f"out of scope: {len(OUT_OF_SCOPE)} requests ({len(OUT_OF_SCOPE) - korean} English, {korean} Korean) asked "
          "of every corpus")
    print(f"\n{'embedder':<18}{'query set':<27}{'MRR@10':>8}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'test 1st':>9}"
          f"{'answered':>9}{'R@10 cut':>9}{'refused':>8}")
    for label, name, figures, refusals in rows:
        print(f"{label:<18}{name:<27}{figures.mrr:8.3f}" + "".join(f"{figures.recall[k]:7.3f}" for k in (1, 5, 10))
              + f"{figures.test_first:9.3f}{figures.answered:9.3f}{figures.recall_cut:9.3f}{refusals:8.3f}")
    print(f"{'BM25 (code)':<18}{'English':<27}{baseline.mrr:8.3f}"
          + "".join(f"{baseline.recall[k]:7.3f}" for k in (1, 5, 10)))
    print("answered: in-scope queries with at least one result after the calibrated cut; R@10 cut: recall@10 of "
          "those results;\nrefused: out-of-scope requests with no result at all; test 1st: queries whose first "
          "result is test code.")
    english = next(figures for label, name, figures, _ in rows if name == f"English (tests: {tests})")
    ratio = english.mrr / baseline.mrr if baseline.mrr else float("inf")
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ratio ragcode (embedder A)/BM25 MRR@10, English: {ratio:.2f} ({verdict} the {TARGET_RATIO}x target)")
    print(f"\ncall graph (callers and callees of the top results; tests: {tests})")
    print(f"{'embedder':<18}{'query set':<12}{'MRR@10':>8}{'+cands':>8}{'R@10':>7}{'+cands':>8}{'added/q':>9}"
          f"{'in top10':>9}{'top10':>7}{'+related':>9}{'rescued':>9}{'related/q':>10}")
    for label, name, base, graph in graphs:
        extended = graph.with_candidates
        print(f"{label:<18}{name:<12}{base.mrr:8.3f}{extended.mrr:8.3f}{base.recall[10]:7.3f}{extended.recall[10]:8.3f}"
              f"{graph.added_per_query:9.2f}{graph.entered_top:9.3f}{graph.covered:7.3f}{graph.covered_related:9.3f}"
              f"{graph.rescued:9.3f}{graph.related_per_query:10.2f}")
    print(f"+cands: the callers and callees of the top {SEEDS} added as candidates (added/q: how many were not "
          "candidates already; in top10: queries where one entered the top 10),\nscored by calibrated similarity; "
          f"top10/+related: queries with a target in the top 10, or in the top 10 and its {RELATED} related "
          "functions;\nrescued: of the queries whose top 10 misses, the share whose related functions hold a target.")
    print(f"'{KALMAN}' over httpx: " + ", ".join(
        f"{label} {'refused' if ok else 'ANSWERED'}" for label, ok in kalman.items()))
    print(f"time: {searched - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
