"""The whole line on every backend: index, push, search, ask, ``/ragcode`` through ``serve``, status, forget.

Each case runs every step with real processes (``python -m bot index|search|ask|status|serve``) on real git
repositories, against the stand-ins on loopback: GitHub (``serve``'s API), OpenSearch (spec-validating, in
this process), Bedrock (Converse and Titan v2) and an OpenAI-compatible server (chat and embeddings).

Backend matrix. The axes are store {local, opensearch} × text model {offline, bedrock, openai} × embedder
{local, bedrock, openai}: 18 combinations, each starting a dozen processes. ``LINES`` takes six of them so
that every store meets every text model and every embedder (each store row is a Latin square over model and
embedder):

    store        text model   embedder
    local        offline      local      (the embedded default, no account at all)
    local        bedrock      bedrock    (one Bedrock endpoint serves both)
    local        openai       openai     (one OpenAI-compatible server serves both)
    opensearch   offline      openai
    opensearch   bedrock      local
    opensearch   openai       bedrock

Model × embedder pairs are covered six of nine times, including the three where both share one provider;
the text model and the embedder only meet through the store (summaries are embedded after they are
written), which every store × model and store × embedder pair exercises.

Two separate stores per case: the command line indexes into one (its own ``RAGCODE_HOME`` and, on
OpenSearch, its own index prefix), ``serve`` into another, so each can assert exactly which functions a
run summarized and the stand-ins can be asked exactly which summary requests they got. The OpenSearch,
Bedrock and OpenAI-compatible stand-ins are shared by the module (each case has its own index prefixes and
looks only at the requests of its own steps); GitHub's is per case.

Relevance: with the bundled embedder the right function must rank first. The stand-ins' vectors carry no
meaning yet (a hash of the whole text), so for them ``ranks_by_meaning`` is False and the suite checks that
every result is exact (lines, permalink, summary, never a deleted function) but not which one comes first;
once ``standin_vector`` is a bag of words the ranking checks apply to every line by themselves.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import numpy as np
import pytest

from bot.commands.reference_texts import REFERENCE_TEXTS
from tests.bedrock_standin import BedrockStandin, RegionConfig, standin_summary, standin_vector
from tests.github_standin import (
    GitHubStandIn,
    comment_payload,
    example,
    installation_payload,
    push_payload,
)
from tests.openai_standin import API_KEY, EMBED_MODEL, MODEL, OpenAIStandin
from tests.opensearch_standin import StandIn, serve
from tests.processes import (
    Server,
    app_settings,
    clean_environment,
    commit_files,
    completed_check,
    ragcode,
    ragcode_json,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Line:
    """One backend combination."""

    store: str
    llm: str
    embedder: str

    def __str__(self) -> str:
        return f"{self.store}-{self.llm}-{self.embedder}"


LINES = [
    Line("local", "offline", "local"),
    Line("local", "bedrock", "bedrock"),
    Line("local", "openai", "openai"),
    Line("opensearch", "offline", "openai"),
    Line("opensearch", "bedrock", "local"),
    Line("opensearch", "openai", "bedrock"),
]

# One region answers 503, one throttles above one call in flight: every Bedrock line fails over as it goes.
REGIONS = {"us-east-1": RegionConfig(latency=0.005), "ap-northeast-2": RegionConfig(latency=0.005, limit=1),
           "eu-west-1": RegionConfig(down=True)}
OPENAI_DIMENSION = 256
OPENSEARCH_USER, OPENSEARCH_PASSWORD = "ragcode", "a-Strong-passw0rd"
# texts embedded that are no function of the repository: serve's warm-up, the OpenAI embedder's probe of its
# dimension, the relevance cut's reference code
NOT_FUNCTIONS = {"warm up", "dimension", *REFERENCE_TEXTS}
INSTALLATION = 77
AWS_KEY = "AKIA" + "Q3EGRIKPQ7VXTW5D"  # planted; must never reach a model, the store or a reply
PERMALINK = re.compile(
    r"\((https://github\.example/[^/]+/[^/]+)/blob/([0-9a-f]{40})/([^#)]+)#L(\d+)-L(\d+)\) — `([^`]+)`")
GENERATED = "```python\ndef generated():\n    return 42\n```"

PRICING_V1 = '''"""가격, 쿠폰, 세금."""


def apply_coupon(price, rate):
    """가격에 쿠폰 할인율을 적용한다."""
    return round(price * (1 - rate), 2)


def add_tax(price, rate):
    """가격에 부가세를 더한다."""
    return round(price * (1 + rate), 2)
'''

PRICING_V2 = '''"""가격, 쿠폰, 세금."""


def apply_coupon(price, rate):
    """가격에 쿠폰 할인율을 적용한다. 할인율은 0과 1 사이로 자른다."""
    rate = min(max(rate, 0.0), 1.0)
    return round(price * (1 - rate), 2)


def add_tax(price, rate):
    """가격에 부가세를 더한다."""
    return round(price * (1 + rate), 2)
'''

ORDERS_V1 = '''"""Orders: shipping, cancelling and the ledger."""

QUEUE = []


def ship_order(order_id):
    """Put an order on the shipping queue."""
    QUEUE.append(order_id)


def cancel_order(order_id):
    """Take an order off the shipping queue."""
    QUEUE.remove(order_id)


class Ledger:
    """Amounts booked, in order."""

    def __init__(self):
        self.entries = []

    def record(self, amount):
        """Book an amount in the ledger."""
        self.entries.append(amount)
'''

ORDERS_V2 = '''"""Orders: shipping, cancelling and the ledger."""

QUEUE = []


def ship_order(order_id):
    """Put an order on the shipping queue."""
    QUEUE.append(order_id)


def refund_order(order_id, ledger):
    """Refund a shipped order by booking its negative amount in the ledger."""
    ledger.record(-AMOUNTS[order_id])


class Ledger:
    """Amounts booked, in order."""

    def __init__(self):
        self.entries = []

    def record(self, amount):
        """Book an amount in the ledger."""
        self.entries.append(amount)
'''

SLUG = '''def slugify(title):
    """Turn a product title into a URL slug."""
    return "-".join(title.lower().split())
'''

CART_V1 = '''/** Sum of the cart's item prices times their quantities. */
function cartTotal(items) {
  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

/** Format cents as a price with two decimals. */
function formatPrice(cents) {
  return (cents / 100).toFixed(2);
}
'''

CART_V2 = '''/** Sum of the cart's item prices times their quantities. */
function cartTotal(items) {
  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

/** Format cents as a price with two decimals and the currency sign. */
function formatPrice(cents, currency = "$") {
  const amount = (cents / 100).toFixed(2);
  return `${currency}${amount}`;
}
'''

CLOUD = f'''def storage_client(region):
    """Connect to the object storage of a region with the deploy credentials."""
    access_key = "{AWS_KEY}"
    return connect(region, access_key)
'''

SAUCE = '''def quantum_flux_capacitor(gigawatts):
    """Charge the quantum flux capacitor of the secret sauce machine."""
    return gigawatts * 1.21
'''

V1 = {"shop/pricing.py": PRICING_V1, "shop/orders.py": ORDERS_V1, "shop/util.py": SLUG, "web/cart.js": CART_V1,
      "cloud.py": CLOUD}
# two functions changed (one Python, one JavaScript), one added, one deleted, one moved with its file
V2 = {"shop/pricing.py": PRICING_V2, "shop/orders.py": ORDERS_V2, "web/cart.js": CART_V2}
# a broken configuration is reported in the check run and what it can still say applies
SAUCE_CONFIG = "exclude: ['.github/**']\ncolour: blue\n"
FIRST = Counter(["<module>", "apply_coupon", "add_tax", "<module>", "ship_order", "cancel_order", "Ledger.__init__",
                 "Ledger.record", "slugify", "cartTotal", "formatPrice", "storage_client"])
CHANGED = Counter(["apply_coupon", "formatPrice", "refund_order"])
TOTAL_V2 = sum(FIRST.values())  # refund_order came, cancel_order went
PUSH_TITLE = "1 added, 2 updated, 1 removed, 3 summarized"
WIDGETS_PATHS = ["cloud.py", "shop/orders.py", "shop/pricing.py", "shop/text.py", "web/cart.js"]
# what serve may warn about in this script: the region that is down, the refused drop of the default branch
EXPECTED_WARNINGS = re.compile(r"region eu-west-1 unavailable|refusing to drop the default branch main")
# Where the functions asked about live at V2 (1-based, inclusive).
SPANS_V2 = {"apply_coupon": ("shop/pricing.py", 4, 7), "formatPrice": ("web/cart.js", 6, 10),
            "slugify": ("shop/text.py", 1, 3), "refund_order": ("shop/orders.py", 11, 13)}
QUERIES = {"apply_coupon": "쿠폰 할인율을 가격에 적용", "formatPrice": "format cents as a price with the currency sign",
           "slugify": "turn a product title into a URL slug", "refund_order": "refund a shipped order in the ledger"}
GONE_QUERY = "take an order off the shipping queue"  # what the deleted cancel_order did
ASK = "가격에 쿠폰 할인율을 적용하는 함수를 써 줘 (apply a coupon discount rate)"


@dataclass
class StandIns:
    """The model and store stand-ins shared by every case of the module."""

    bedrock: BedrockStandin
    openai: OpenAIStandin
    opensearch: StandIn
    opensearch_url: str


@dataclass
class Received:
    """What the model stand-ins received during one step."""

    summaries: dict[str, Counter[str]]  # backend -> function name -> summary requests
    embedded: dict[str, list[str]]  # backend -> texts embedded
    prompts: list[str]  # every chat prompt, both backends


class Watch:
    """Marks the stand-ins' request logs so a step can ask what arrived since."""

    def __init__(self, standins: StandIns) -> None:
        self.standins = standins
        self.mark = self._now()

    def _now(self) -> tuple[Counter[str], Counter[str], int, int, int, int]:
        bedrock, openai = self.standins.bedrock, self.standins.openai
        return (Counter(bedrock.summarized()), openai.summaries(), len(bedrock.embedded), len(openai.embedded),
                len(bedrock.prompts), len(openai.prompts))

    def received(self) -> Received:
        """Requests since the last call (or since the watch began), and a new mark."""
        before, now = self.mark, self._now()
        self.mark = now
        bedrock, openai = self.standins.bedrock, self.standins.openai
        return Received(
            summaries={"bedrock": now[0] - before[0], "openai": now[1] - before[1]},
            embedded={"bedrock": bedrock.embedded[before[2]:now[2]], "openai": openai.embedded[before[3]:now[3]]},
            prompts=bedrock.prompts[before[4]:now[4]] + openai.prompts[before[5]:now[5]],
        )


@pytest.fixture(scope="module")
def standins() -> Iterator[StandIns]:
    opensearch = StandIn(basic_auth=f"{OPENSEARCH_USER}:{OPENSEARCH_PASSWORD}")
    openai = OpenAIStandin(dimension=OPENAI_DIMENSION)
    try:
        with BedrockStandin(REGIONS) as bedrock, serve(opensearch) as url:
            yield StandIns(bedrock, openai, opensearch, url)
    finally:
        openai.close()


def backend_settings(line: Line, home: Path, prefix: str, standins: StandIns) -> dict[str, str]:
    """The environment that selects ``line``'s backends, pointed at the stand-ins."""
    env = {"RAGCODE_HOME": str(home), "RAGCODE_STORE": line.store, "RAGCODE_LLM": line.llm,
           "RAGCODE_EMBEDDER": line.embedder}
    if line.store == "opensearch":
        env |= {"OPENSEARCH_URL": standins.opensearch_url, "OPENSEARCH_USER": OPENSEARCH_USER,
                "OPENSEARCH_PASSWORD": OPENSEARCH_PASSWORD, "RAGCODE_OPENSEARCH_INDEX_PREFIX": prefix}
    if "bedrock" in (line.llm, line.embedder):
        env |= {"RAGCODE_BEDROCK_REGIONS": ",".join(REGIONS), "RAGCODE_BEDROCK_COOLDOWN": "30",
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": standins.bedrock.url, "AWS_ACCESS_KEY_ID": "AKIDSTANDIN",
                "AWS_SECRET_ACCESS_KEY": "standin-secret", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(home.parent / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(home.parent / "no-aws-credentials")}
    if "openai" in (line.llm, line.embedder):
        env |= {"RAGCODE_OPENAI_BASE_URL": standins.openai.url, "RAGCODE_OPENAI_API_KEY": API_KEY,
                "RAGCODE_OPENAI_MODEL": MODEL, "RAGCODE_OPENAI_EMBED_MODEL": EMBED_MODEL}
    return env


def model_name(line: Line) -> str:
    """The ``llm`` a report or an answer names."""
    return {"offline": "offline", "bedrock": "bedrock:", "openai": f"openai:{MODEL}"}[line.llm]


def assert_summarized(line: Line, received: Received, expected: Counter[str]) -> None:
    """The text model's stand-in answered one summary request per function in ``expected``; the other none."""
    for backend in ("bedrock", "openai"):
        assert received.summaries[backend] == (expected if line.llm == backend else Counter()), backend


def assert_embedded(line: Line, received: Received, names: Counter[str]) -> None:
    """The embedder's stand-in embedded one text per function in ``names`` (name first, then its summary)."""
    for backend in ("bedrock", "openai"):
        texts = [text for text in received.embedded[backend] if text not in NOT_FUNCTIONS]
        if line.embedder == backend:
            assert Counter(text.split("\n", 1)[0] for text in texts) == names, backend
        else:
            assert received.embedded[backend] == [], backend


def assert_no_secret(received: Received) -> None:
    """The planted key never reached a model."""
    assert not any(AWS_KEY in prompt or "AKIA" in prompt for prompt in received.prompts)
    assert not any(AWS_KEY in text for texts in received.embedded.values() for text in texts)


def span_is_function(text: str, start: int, end: int, name: str) -> bool:
    """Lines ``start``–``end`` of ``text`` hold the whole function ``name`` (its header in, nothing after it)."""
    lines = text.splitlines()
    if name == "<module>":  # module-level code: any lines of the file
        return 1 <= start <= end <= len(lines)
    short = name.rsplit(".", 1)[-1]
    inside = lines[start - 1:end]
    header = any(re.match(rf"\s*(?:def|function|async def)\s+{re.escape(short)}\b", line) for line in inside)
    return 1 <= start <= end <= len(lines) and header and inside[-1].strip() != "" and (
        end == len(lines) or lines[end].strip() == "")


def file_at(repo: git.Repo, sha: str, path: str) -> str:
    """The text of ``path`` at commit ``sha``."""
    return str(repo.git.show(f"{sha}:{path}"))


def store_paths(line: Line, home: Path, prefix: str, standins: StandIns) -> dict[str, Any]:
    """What the store holds, read directly: document paths and branch-state repositories (and every byte)."""
    if line.store == "local":
        database = sqlite3.connect(f"file:{home / 'index' / 'ragcode.sqlite3'}?mode=ro", uri=True)
        try:
            paths = sorted(row[0] for row in database.execute("SELECT path FROM documents"))
            fts = database.execute("SELECT COUNT(*) FROM documents_fts").fetchone()[0]
            repos = sorted(row[0] for row in database.execute("SELECT name FROM branches WHERE commit_sha IS NOT NULL"))
            cached = sorted({row[0] for row in database.execute(
                "SELECT repo_id FROM summary_cache UNION SELECT repo_id FROM vector_cache")})
        finally:
            database.close()
        assert fts == len(paths), "full-text rows without documents"
        files = [path for path in (home / "index").rglob("*") if path.is_file()]
        vectors = sorted(path.name for path in files if path.parent.name == "faiss")
        return {"paths": paths, "repos": repos, "vectors": vectors, "cached": cached,
                "raw": b"".join(p.read_bytes() for p in files)}
    with standins.opensearch.lock:
        indices = {name: index for name, index in standins.opensearch.indices.items() if name.startswith(prefix + "-")}
        paths = sorted(source["path"] for name, index in indices.items() if name.startswith(f"{prefix}-v2-documents-")
                       for source in index["docs"].values())
        repos = sorted(source["repo"] for source in indices.get(f"{prefix}-v2-state", {"docs": {}})["docs"].values())
        cached = sorted({source["repo_id"] for name in (f"{prefix}-v2-summaries", f"{prefix}-v2-vectors")
                         for source in indices.get(name, {"docs": {}})["docs"].values()})
        raw = json.dumps(indices, ensure_ascii=False).encode()
    return {"paths": paths, "repos": repos, "vectors": [], "cached": cached, "raw": raw}  # vectors: in the documents


def ranks_by_meaning(line: Line) -> bool:
    """Whether results come in order of relevance: the bundled model's vectors carry meaning, and a stand-in's do
    once ``standin_vector`` reflects the words of its text (a hashed bag of words) rather than a hash of it all."""
    if line.embedder == "local":
        return True
    short, longer = (standin_vector(text, 256) for text in ("coupon discount rate", "apply a coupon discount rate"))
    return float(short @ longer / (np.linalg.norm(short) * np.linalg.norm(longer))) > 0.5


def assert_results(line: Line, results: list[dict[str, Any]], widgets: git.Repo, commit: str) -> None:
    """Each result names exactly the lines of its function at the indexed commit, links to them and carries the
    summary the text model wrote (the extractive one when offline)."""
    for result in results:
        path, start, end = result["path"], result["start_line"], result["end_line"]
        first_sentence = standin_summary(result["name"], korean=True).split(". ")[0]  # the rest restates the docstring
        from_model = result["summary"].startswith(first_sentence)
        assert from_model == (line.llm != "offline") and f"`{result['name']}`" in result["summary"], result
        assert span_is_function(file_at(widgets, commit, path), start, end, result["name"]), result
        assert result["permalink"] == f"https://github.com/acme/widgets/blob/{commit}/{path}#L{start}-L{end}"
        assert result["name"] != "cancel_order" and path != "shop/util.py", "a deleted or moved-away function"


def check_permalinks(reply: str, widgets: git.Repo, commit: str, wanted: str, ranked: bool) -> None:
    """Every permalink of ``reply`` points at ``commit`` and at exactly the lines of the function it names; when
    results are ranked by meaning, the first is ``wanted``."""
    links = PERMALINK.findall(reply)
    assert links, reply
    for html_url, sha, path, start, end, name in links:
        assert (html_url, sha) == ("https://github.example/acme/widgets", commit)
        assert span_is_function(file_at(widgets, commit, path), int(start), int(end), name), (path, start, end, name)
    if ranked:
        path, start, end = SPANS_V2[wanted]
        assert links[0][2:] == (path, str(start), str(end), wanted), reply


def unexpected_log_records(log: Path) -> list[str]:
    """Lines of serve's log that are not JSON records, errors, and warnings the script does not provoke."""
    unexpected = []
    for text in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            unexpected.append(text)
            continue
        level = record.get("level")
        if level in ("ERROR", "CRITICAL") or level == "WARNING" and not EXPECTED_WARNINGS.search(record["message"]):
            unexpected.append(text)
    return unexpected


class Case:
    """One backend combination going through the whole line; each method is one step and checks it."""

    def __init__(self, line: Line, standins: StandIns, github: GitHubStandIn, private_key: str, root: Path) -> None:
        self.line, self.standins, self.github, self.root = line, standins, github, root
        self.cwd = root / "work"  # commands run here: no ragcode.toml
        self.cwd.mkdir()
        self.widgets = git.Repo.init(root / "widgets", initial_branch="main")
        commit_files(self.widgets, V1, "shop")
        self.sauce = git.Repo.init(root / "sauce", initial_branch="main")
        commit_files(self.sauce, {"sauce.py": SAUCE, ".github/ragcode.yml": SAUCE_CONFIG}, "sauce")
        self.repo = github.add_repo("acme/widgets", f"file://{root / 'widgets'}", octocat="write")
        self.other = github.add_repo("acme/sauce", f"file://{root / 'sauce'}", octocat="write")
        self.repo.pull_files[7] = ["shop/pricing.py"]
        slug = str(line).replace("-", "")
        self.cli_home, self.cli_prefix = root / "cli", f"cli-{slug}"
        self.app_home, self.app_prefix = root / "app", f"app-{slug}"
        self.cli_env = clean_environment(**backend_settings(line, self.cli_home, self.cli_prefix, standins))
        self.app_env = clean_environment(**backend_settings(line, self.app_home, self.app_prefix, standins),
                                         **app_settings(github, private_key), RAGCODE_JOB_MAX_ATTEMPTS="1")
        self.server = Server(self.app_env, root / "serve.log", self.cwd)
        self.watch = Watch(standins)
        self.first = self.widgets.head.commit.hexsha
        self.second = ""
        self.problems_before = len(standins.opensearch.problems)
        self.errors_before = (len(standins.bedrock.errors), len(standins.openai.errors))

    def index(self) -> dict[str, Any]:
        """``ragcode index`` of the widgets repository's working tree."""
        report: dict[str, Any] = ragcode_json("index", str(self.widgets.working_tree_dir), "--repo", "acme/widgets",
                                              "--json", env=self.cli_env, cwd=self.cwd)
        return report

    def first_index_through_the_command_line(self) -> None:
        """Every function is summarized by the text model and embedded by the embedder, the key never sent."""
        report = self.index()
        assert (report["repo"], report["commit"], report["previous_commit"]) == ("acme/widgets", self.first, None)
        assert report["functions_total"] == report["functions_added"] == sum(FIRST.values())
        assert report["summaries_generated"] == sum(FIRST.values()) and report["functions_failed"] == []
        assert report["secrets_redacted"] >= 1 and report["llm"].startswith(model_name(self.line))
        received = self.watch.received()
        assert_summarized(self.line, received, FIRST)
        assert_embedded(self.line, received, FIRST)
        assert_no_secret(received)
        calls = {region: figures["calls"] for region, figures in report["usage"].items()}
        if self.line.llm == "bedrock":  # the region that is down gets the first wave only, then cools down
            assert calls.get("eu-west-1", 0) < calls["us-east-1"], calls
            assert report["usage"]["us-east-1"]["input_tokens"] > 0
        if self.line.llm == "openai":
            assert calls == {"openai-1": sum(FIRST.values())}  # endpoints are named by position, never by URL
        if self.line.llm == "offline":
            assert report["usage"] == {}

    def push_through_the_command_line(self) -> None:
        """Two changed functions, one added, one deleted, one moved: only the first three are summarized."""
        self.widgets.git.mv("shop/util.py", "shop/text.py")
        self.second = commit_files(self.widgets, V2, "coupon bounds, refunds, prices with currency; util -> text")
        report = self.index()
        assert (report["commit"], report["previous_commit"]) == (self.second, self.first)
        counts = {key: report[f"functions_{key}"] for key in ("added", "updated", "removed", "moved")}
        assert counts == {"added": 1, "updated": 2, "removed": 1, "moved": 1}, report
        assert report["summaries_generated"] == sum(CHANGED.values()) and report["functions_failed"] == []
        assert report["functions_total"] == TOTAL_V2
        received = self.watch.received()
        assert_summarized(self.line, received, CHANGED)
        assert_embedded(self.line, received, CHANGED)
        held = store_paths(self.line, self.cli_home, self.cli_prefix, self.standins)
        assert (sorted(set(held["paths"])), held["repos"]) == (WIDGETS_PATHS, ["acme/widgets"])

    def search_through_the_command_line(self) -> None:
        """Each function is found where it now lives; a deleted or moved-away one never is."""
        queries = self.cwd / "queries.jsonl"
        queries.write_text("".join(json.dumps({"id": name, "query": query}, ensure_ascii=False) + "\n"
                                   for name, query in [*QUERIES.items(), ("gone", GONE_QUERY)]))
        done = ragcode("search", "--queries", str(queries), "--repo", "acme/widgets", "--json", env=self.cli_env,
                       cwd=self.cwd)
        assert done.returncode == 0, done.stderr
        answers = {item["id"]: item for item in map(json.loads, done.stdout.splitlines())}
        assert set(answers) == {*QUERIES, "gone"}
        for name, (path, start, end) in SPANS_V2.items():
            results = answers[name]["results"]
            assert answers[name]["commit"] == self.second and results, answers[name]
            assert_results(self.line, results, self.widgets, self.second)
            if ranks_by_meaning(self.line):
                best = results[0]
                assert (best["name"], best["path"], best["start_line"], best["end_line"]) == (name, path, start, end)
        assert_results(self.line, answers["gone"]["results"], self.widgets, self.second)
        received = self.watch.received()
        if self.line.embedder != "local":  # the queries were embedded by the embedder's stand-in
            assert set(QUERIES.values()) <= set(received.embedded[self.line.embedder]), received.embedded
        assert received.prompts == [] and not any(received.summaries.values())

    def ask_through_the_command_line(self) -> None:
        """The reply cites its references; a text model wrote the code from a prompt holding all of them."""
        asked = ragcode_json("ask", ASK, "--repo", "acme/widgets", "--json", env=self.cli_env, cwd=self.cwd)
        assert asked["references"] and asked["llm"].startswith(model_name(self.line))
        assert_results(self.line, asked["references"], self.widgets, self.second)
        assert all(reference["permalink"] in asked["answer_markdown"] for reference in asked["references"])
        if ranks_by_meaning(self.line):
            assert asked["references"][0]["name"] == "apply_coupon", asked["references"]
        received = self.watch.received()
        if self.line.llm == "offline":
            assert "RAGCODE_LLM=offline" in asked["answer_markdown"] and GENERATED not in asked["answer_markdown"]
            assert received.prompts == []
        else:
            assert GENERATED in asked["answer_markdown"], asked["answer_markdown"]
            assert len(received.prompts) == 1
            assert all(f"— {reference['name']}" in received.prompts[0] for reference in asked["references"])
        assert_summarized(self.line, received, Counter())

    def install(self) -> None:
        """``installation.created``: a full index of each default branch, reported in a check run."""
        self.server.start()
        response = self.server.deliver("installation", installation_payload([self.repo, self.other], INSTALLATION))
        assert response.status_code == 202
        self.server.wait_idle()
        installed = completed_check(self.github, "acme/widgets", self.first)
        total = sum(FIRST.values())
        assert installed["conclusion"] == "success"
        assert installed["output"]["title"] == f"{total} added, 0 updated, 0 removed, {total} summarized"
        configured = completed_check(self.github, "acme/sauce", self.sauce.head.commit.hexsha)
        assert configured["output"]["title"] == "1 added, 0 updated, 0 removed, 1 summarized (configuration has errors)"
        assert "unknown key" in configured["output"]["summary"] and "colour" in configured["output"]["summary"]
        received = self.watch.received()
        assert_summarized(self.line, received, FIRST + Counter(["quantum_flux_capacitor"]))
        assert_embedded(self.line, received, FIRST + Counter(["quantum_flux_capacitor"]))
        assert_no_secret(received)

    def push_through_serve(self) -> None:
        """The same push as a delivery: the same counts in a check run that went from in progress to completed."""
        payload = push_payload(self.repo, INSTALLATION, "main", self.first, self.second)
        assert self.server.deliver("push", payload).status_code == 202
        self.server.wait_idle()
        check = completed_check(self.github, "acme/widgets", self.second)
        assert (check["conclusion"], check["output"]["title"]) == ("success", PUSH_TITLE)
        summary = check["output"]["summary"]
        assert "| Summaries generated | 3 |" in summary and "| Moved | 1 |" in summary
        if self.line.llm == "offline":
            assert "No model calls (offline summaries)." in summary
        else:
            assert "**Model calls per region**" in summary
        history = self.github.check_run_history[check["id"]]
        assert history[0]["status"] == "in_progress" and history[-1]["status"] == "completed"
        received = self.watch.received()
        assert_summarized(self.line, received, CHANGED)
        assert_embedded(self.line, received, CHANGED)

    def ask_through_serve(self) -> None:
        """``/ragcode``: 👀, then the code and permalinks to the indexed lines of the pushed commit."""
        ask = comment_payload(self.repo, INSTALLATION, f"/ragcode {ASK}", comment_id=501)
        assert self.server.deliver("issue_comment", ask).status_code == 202
        self.server.wait_idle()
        assert {"comment": 501, "content": "eyes"}.items() <= self.github.reactions[-1].items()
        reply = self.github.comments_on("acme/widgets", 1)[-1]["body"]
        check_permalinks(reply, self.widgets, self.second, "apply_coupon", ranks_by_meaning(self.line))
        received = self.watch.received()
        if self.line.llm == "offline":
            assert "RAGCODE_LLM=offline" in reply and received.prompts == []
        else:
            assert GENERATED in reply and len(received.prompts) == 1
        assert_summarized(self.line, received, Counter())

    def search_through_serve(self) -> None:
        """``/ragcode search``: references only, no secret, nothing of the other repository."""
        for number, question in enumerate(["/ragcode search storage client credentials access key",
                                           "/ragcode search connect to object storage with the deploy credentials",
                                           "/ragcode search quantum flux capacitor"], start=600):
            self.server.deliver("issue_comment", comment_payload(self.repo, INSTALLATION, question, comment_id=number))
        self.server.wait_idle()
        replies = [c["body"] for c in self.github.comments_on("acme/widgets", 1)[-3:]]
        assert any("cloud.py" in body for body in replies[:2]), replies
        for body in replies:
            assert GENERATED not in body and AWS_KEY not in body and "AKIA" not in body
            assert "quantum_flux" not in body and "acme/sauce" not in body and "sauce.py" not in body
        received = self.watch.received()
        assert received.prompts == [] and not any(received.summaries.values())
        assert_no_secret(received)

    def pull_request_and_default_branch_deletion(self) -> None:
        """A command on a pull request whose overlay is not indexed yet answers from the base (its changed files
        asked for) and queues the overlay; deleting the default branch drops nothing."""
        self.widgets.git.checkout("-b", "tax")
        head = commit_files(self.widgets, {"shop/pricing.py": PRICING_V2.replace("부가세를", "부가세 10%를")}, "tax")
        self.widgets.git.checkout("main")
        self.github.open_pull(self.repo, 7, head, head_ref="tax")
        pr = comment_payload(self.repo, INSTALLATION, "/ragcode search add tax", issue=7, pull_request=True,
                             comment_id=700)
        self.server.deliver("issue_comment", pr)
        deletion = push_payload(self.repo, INSTALLATION, "main", self.second, "0" * 40)
        assert self.server.deliver("push", deletion).status_code == 202
        self.server.wait_idle()
        assert self.github.recorded("GET", r"/repos/acme/widgets/pulls/7/files")
        reply = self.github.comments_on("acme/widgets", 7)[-1]["body"]
        assert "shop/pricing.py" in reply and "아직 색인하는 중이라 기본 브랜치 `main` 기준으로" in reply
        [widgets] = [r for r in ragcode_json("status", "--json", env=self.app_env, cwd=self.cwd)["repositories"]
                     if r["repo"] == "acme/widgets"]
        assert widgets["pull_requests"]["7"]["commit"] == head, "the command queued the pull request's overlay"
        assert_summarized(self.line, self.watch.received(), Counter(["add_tax"]))

    def status(self) -> None:
        """``ragcode status`` shows the indexed commits; the store holds both repositories, never the key."""
        status = ragcode_json("status", "--json", env=self.app_env, cwd=self.cwd)
        branches = {r["repo"]: {b: (s["commit"], s["functions"]) for b, s in r["branches"].items()}
                    for r in status["repositories"]}
        assert branches == {"acme/widgets": {"main": (self.second, TOTAL_V2)},
                            "acme/sauce": {"main": (self.sauce.head.commit.hexsha, 1)}}
        held = store_paths(self.line, self.app_home, self.app_prefix, self.standins)
        assert AWS_KEY.encode() not in held["raw"]
        assert sorted(set(held["paths"])) == sorted([*WIDGETS_PATHS, "sauce.py"])

    def remove_one_repository(self) -> None:
        """``installation_repositories.removed``: widgets is forgotten, sauce still answers."""
        removed = example("installation_repositories/removed")
        removed["installation"]["id"] = INSTALLATION
        removed["repositories_removed"] = [{"id": self.repo.id, "node_id": "R", "name": "widgets",
                                            "full_name": "acme/widgets", "private": True}]
        self.github.revoke(self.repo, INSTALLATION)  # GitHub confirms the loss when the runner asks
        assert self.server.deliver("installation_repositories", removed).status_code == 202
        self.server.wait_idle()
        self.assert_forgotten(["sauce.py"], ["acme/sauce"])
        question = comment_payload(self.other, INSTALLATION, "/ragcode search quantum flux", comment_id=900)
        self.server.deliver("issue_comment", question)
        self.server.wait_idle()
        assert "sauce.py" in self.github.comments_on("acme/sauce", 1)[-1]["body"]

    def uninstall(self) -> None:
        """``installation.deleted``: nothing is left."""
        deleted = example("installation/deleted")
        deleted["installation"]["id"] = INSTALLATION
        deleted["repositories"] = [{"id": self.other.id, "node_id": "R", "name": "sauce", "full_name": "acme/sauce",
                                    "private": True}]
        self.github.deleted_installations.add(INSTALLATION)
        assert self.server.deliver("installation", deleted).status_code == 202
        self.server.wait_idle()
        self.assert_forgotten([], [])

    def assert_forgotten(self, paths: list[str], repos: list[str]) -> None:
        """widgets is gone from status, search, the store and the mirrors; only ``paths`` of ``repos`` stay."""
        status = ragcode_json("status", "--json", env=self.app_env, cwd=self.cwd)
        assert sorted(r["repo"] for r in status["repositories"]) == repos
        searched = ragcode("search", "coupon", "--repo", "acme/widgets", "--json", env=self.app_env, cwd=self.cwd)
        assert searched.returncode == 2 and "acme/widgets: not indexed" in searched.stderr
        held = store_paths(self.line, self.app_home, self.app_prefix, self.standins)
        assert (held["paths"], held["repos"]) == (paths, repos)
        assert repos or held["vectors"] == [], "Faiss snapshots of forgotten branches"
        ids = {"acme/widgets": self.repo.id, "acme/sauce": self.other.id}
        # id 0 holds only the bundled reference code of the relevance cut: no tenant's data
        assert self.repo.id not in held["cached"] and set(held["cached"]) <= {0, *(ids[repo] for repo in repos)}, \
            "summaries and vectors cached for a forgotten repository"
        mirrors = sorted(path.name for path in (self.app_home / "mirrors").iterdir())
        assert mirrors == sorted(f"{ids[repo]}.git" for repo in repos)

    def finish(self) -> None:
        """Stop serve; nothing went wrong that the steps did not see."""
        self.server.stop()
        assert unexpected_log_records(self.server.log) == []
        assert self.github.errors == []
        assert self.standins.opensearch.problems[self.problems_before:] == [], "requests or answers off the spec"
        bedrock, openai = self.standins.bedrock.errors, self.standins.openai.errors
        assert (bedrock[self.errors_before[0]:], openai[self.errors_before[1]:]) == ([], [])


@pytest.fixture(params=LINES, ids=str)
def case(request: pytest.FixtureRequest, standins: StandIns, github: GitHubStandIn, keys: tuple[str, str],
         tmp_path: Path) -> Iterator[Case]:
    case = Case(request.param, standins, github, keys[0], tmp_path)
    yield case
    case.server.stop()


def test_whole_line(case: Case) -> None:
    case.install()
    case.first_index_through_the_command_line()
    case.push_through_the_command_line()
    case.search_through_the_command_line()
    case.ask_through_the_command_line()
    case.push_through_serve()
    case.ask_through_serve()
    case.search_through_serve()
    case.pull_request_and_default_branch_deletion()
    case.status()
    case.remove_one_repository()
    case.uninstall()
    case.finish()
