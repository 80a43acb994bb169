"""``GET /status`` in-process (Starlette's test client): the token, the headers, escaping and bounds of what
comes from outside, branch heads from the GitHub stand-in or the mirror, and parts that cannot be read.

The page is drawn by a receiver (``work=False``): it reads the same store, queue and ledger files the workers
write, as ``serve --no-workers`` does next to ``ragcode worker``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot import metrics
from bot.config import ConfigError, Settings, load_settings
from bot.documents import Repository
from bot.freshness import commits_between
from bot.github.mirror import Mirrors
from bot.queue import JobSpec
from bot.queue.sqlite import JobQueue
from bot.spend import RunSummary, SqliteLedger
from bot.status import quantile_bound
from bot.status_page import CONTENT_SECURITY_POLICY, STYLE, bar_chart, hbar_chart
from bot.store.local import LocalStore
from bot.webhooks import aws_lambda
from bot.webhooks.admin import authorized
from bot.webhooks.app import create_app
from tests.github_standin import GitHubStandIn
from tests.processes import clean_environment, ragcode_json
from tests.test_scaleout import LambdaContext, function_url_event
from tests.test_webhooks import APP_ID, INSTALLATION, SECRET, make_repo

TOKEN = "status-token-0123456789abcdef0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_REPO = "acme/<script>alert('repo')</script>"
HOSTILE_BRANCH = '"><img src=x onerror=alert(1)>'


def settings_for(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(home=home, github_webhook_secret=SECRET, admin_token=TOKEN)
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def app_settings(home: Path, github: GitHubStandIn, keys: tuple[str, str], **overrides: object) -> Settings:
    return settings_for(home, github_api_url=github.url, github_app_id=str(APP_ID), github_private_key=keys[0],
                        allow_file_urls=True, **overrides)


def page(settings: Settings, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    with TestClient(create_app(settings, work=False)) as client:
        response = client.get("/status", headers=BEARER if headers is None else headers)
    return response.status_code, dict(response.headers), response.text


def index_state(home: Path, repo: Repository, branch: str, commit: str) -> None:
    """Record a branch as indexed at ``commit``, as a worker's run does last."""
    store = LocalStore(home / "index")
    try:
        store.set_state(repo, branch, commit, "local:e5", 384)
    finally:
        store.close()


class Tags(HTMLParser):
    """Every tag of a document, with its attributes; and the text of the ones with a class asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


# ---------------------------------------------------------------- who gets the page


def test_without_an_admin_token_there_is_no_status_page(tmp_path: Path) -> None:
    status, _, _ = page(settings_for(tmp_path / "home", admin_token=""))
    assert status == 404
    status, _, _ = page(settings_for(tmp_path / "home"))
    assert status == 200


@pytest.mark.parametrize("header", [None, "", "Bearer", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
                                    f"Basic {TOKEN}", f"Token {TOKEN}", "Bearer " + "x" * 10_000, f"{TOKEN}"])
def test_the_page_needs_the_token_as_a_bearer_token(tmp_path: Path, header: str | None) -> None:
    status, headers, body = page(settings_for(tmp_path / "home"), {} if header is None else {"Authorization": header})
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert headers["cache-control"] == "no-store" and "ragcode status" not in body
    assert not authorized(header, TOKEN) and authorized(f"Bearer {TOKEN}", TOKEN) and authorized(f"bearer {TOKEN}", TOKEN)
    assert not authorized(f"Bearer {TOKEN}", ""), "no token configured matches nothing"


def test_a_short_or_odd_admin_token_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    for bad in ("short", "x" * 23, "has spaces in it but is long enough", "ünïcödé" * 5):
        with pytest.raises(ConfigError, match="^RAGCODE_ADMIN_TOKEN: "):
            load_settings({"RAGCODE_HOME": str(tmp_path), "RAGCODE_ADMIN_TOKEN": bad})
    assert load_settings({"RAGCODE_HOME": str(tmp_path), "RAGCODE_ADMIN_TOKEN": TOKEN}).admin_token == TOKEN


def test_the_lambda_receiver_never_serves_the_page(tmp_path: Path, aws: None) -> None:
    settings = settings_for(tmp_path / "home", store="opensearch", opensearch_url="http://127.0.0.1:9", queue="sqs",
                            sqs_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/jobs.fifo",
                            dynamodb_table="table")
    event = function_url_event(b"", BEARER)
    event["requestContext"]["http"].update(method="GET", path="/status")
    event["rawPath"] = "/status"
    answer = aws_lambda.make_handler(settings)(event, LambdaContext())
    assert answer["statusCode"] == 404


def test_the_page_is_never_cached_runs_no_script_and_allows_only_its_own_style(tmp_path: Path) -> None:
    status, headers, html = page(settings_for(tmp_path / "home"))
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'" and "script-src" not in policy and "unsafe" not in CONTENT_SECURITY_POLICY
    [style] = re.findall(r"<style>(.*?)</style>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert style == STYLE and policy["style-src"] == f"'sha256-{digest}'", "the page's style sheet is the one allowed"
    tags = tags_of(html)
    assert not [tag for tag, attrs in tags if tag in ("script", "iframe", "img", "link", "object") or "style" in attrs]
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in tags


# ---------------------------------------------------------------- what comes from outside


def test_names_and_errors_from_outside_are_escaped_and_clipped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    index_state(home, Repository(41, HOSTILE_REPO, INSTALLATION), HOSTILE_BRANCH, "a" * 40)
    queue = JobQueue(home / "queue.sqlite3", max_attempts=1, backoff=0)
    queue.add(JobSpec("index", HOSTILE_REPO, {}, repo_id=41))
    job = queue.claim()
    assert job is not None
    error = "RuntimeError: <iframe src=https://evil.example></iframe> " + "y" * 5000
    assert queue.fail(job.id, error) == "parked"
    queue.close()
    ledger = SqliteLedger(home / "spend.sqlite3")
    ledger.record_run(RunSummary("1-1", 41, HOSTILE_REPO, INSTALLATION, HOSTILE_BRANCH, "a" * 40, time.time(),
                                 outcome="success", trigger="<marquee>push</marquee>"))
    ledger.record_spend(INSTALLATION, 0.25)
    ledger.close()

    status, _, html = page(settings_for(home))
    assert status == 200
    tags = tags_of(html)
    assert not [tag for tag, _ in tags if tag in ("script", "img", "iframe", "marquee")], "no tag from outside"
    assert not [attrs for _, attrs in tags if "onerror" in attrs]
    assert html.count("acme/&lt;script&gt;alert(&#39;repo&#39;)&lt;/script&gt;") >= 4  # branches, runs, parked, cost
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    [cell] = re.findall(r'<td class="err">(.*?)</td>', html, re.S)
    assert cell.startswith("RuntimeError: &lt;iframe src=https://evil.example&gt;&lt;/iframe&gt; yyy")
    assert cell.endswith("y…") and cell.count("y") < 300, "errors are cut to 300 characters"


def test_long_lists_are_bounded_and_say_how_many_more_there_are(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = LocalStore(home / "index")
    for number in range(130):
        store.set_state(Repository(1000 + number, f"acme/r{number:03d}", INSTALLATION), "main", f"{number:040x}",
                        "local:e5", 384)
    store.close()
    queue = JobQueue(home / "queue.sqlite3", max_attempts=1, backoff=0)
    for number in range(25):
        queue.add(JobSpec("command", f"acme/r{number:03d}", {}, repo_id=1000 + number))
        job = queue.claim()
        assert job is not None
        queue.fail(job.id, f"error {number}")
    queue.close()
    ledger = SqliteLedger(home / "spend.sqlite3")
    for number in range(40):
        ledger.record_run(RunSummary(f"{number}-1", 1000, "acme/r000", INSTALLATION, "main", "b" * 40,
                                     time.time() - 100 + number, outcome="success"))
    ledger.close()

    _, _, html = page(settings_for(home))
    assert html.count('class="repo-row"') == 100 and "… and 30 more branches" in html
    assert html.count('class="parked-row"') == 20 and "… and 5 more parked jobs" in html
    assert "error 24" in html and "error 4<" not in html, "the newest parked jobs are shown"
    assert html.count('class="run-row"') == 25


# ---------------------------------------------------------------- branch heads


def test_branch_heads_come_from_github_and_commits_behind_from_the_mirror(tmp_path: Path, github, keys) -> None:
    home = tmp_path / "home"
    source = make_repo(tmp_path / "src", {"app.py": "def a():\n    return 1\n"})
    indexed = source.head.commit.hexsha
    source.create_head("gone")
    source.create_head("fresh")
    shop = github.add_repo("acme/shop", f"file://{tmp_path / 'src'}")
    for branch in ("main", "gone", "fresh"):
        index_state(home, Repository(shop.id, "acme/shop", INSTALLATION), branch, indexed)
    for number in (2, 3):
        (tmp_path / "src" / "app.py").write_text(f"def a():\n    return {number}\n")
        source.index.add(["app.py"])
        source.index.commit(f"change {number}")
    Mirrors(home / "mirrors", allow_file_urls=True).sync(shop.id, shop.clone_url, None)  # as a worker fetches
    source.delete_head("gone", force=True)
    # a repository GitHub no longer shows the App (404 "Not Found", not "Branch not found"), and no mirror
    index_state(home, Repository(shop.id + 100, "acme/elsewhere", INSTALLATION), "main", indexed)

    settings = app_settings(home, github, keys)
    with TestClient(create_app(settings, work=False)) as client:
        html = client.get("/status", headers=BEARER).text
        asked = len(github.recorded("GET", r"/repos/.*/branches/.*"))
        client.get("/status", headers=BEARER)
        assert len(github.recorded("GET", r"/repos/.*/branches/.*")) == asked == 4, "heads are cached a minute"
    section = html[html.index('<section id="repositories">'):html.index('<section id="runs">')]
    rows = {(name, branch): row for name, branch, row in re.findall(
        r'<td class="name">([^<]*)</td><td class="name">([^<]*)</td>(.*?)</tr>', section, re.S)}
    assert "2 commits behind" in rows[("acme/shop", "main")] and "(GitHub)" in rows[("acme/shop", "main")]
    assert "up to date" in rows[("acme/shop", "fresh")]
    assert "branch deleted on GitHub" in rows[("acme/shop", "gone")]
    assert "unknown" in rows[("acme/elsewhere", "main")]
    assert github.errors and all("acme/elsewhere" in error for error in github.errors)

    # a receiver without the App's credentials: heads from the mirror as last fetched
    _, _, html = page(settings_for(home))
    assert "2 commits behind</span> <span class=\"note\">(mirror as last fetched)" in html
    assert "branch deleted on GitHub" not in html


def test_a_head_the_mirror_lacks_is_named_without_a_count(tmp_path: Path, github, keys) -> None:
    home = tmp_path / "home"
    source = make_repo(tmp_path / "src", {"app.py": "def a():\n    return 1\n"})
    indexed = source.head.commit.hexsha
    shop = github.add_repo("acme/shop", f"file://{tmp_path / 'src'}")
    index_state(home, Repository(shop.id, "acme/shop", INSTALLATION), "main", indexed)
    Mirrors(home / "mirrors", allow_file_urls=True).sync(shop.id, shop.clone_url, None)
    (tmp_path / "src" / "app.py").write_text("def a():\n    return 2\n")
    source.index.add(["app.py"])
    head = source.index.commit("pushed, not fetched yet").hexsha
    _, _, html = page(app_settings(home, github, keys))
    assert f"behind: head <code>{head[:12]}</code>" in html


# ---------------------------------------------------------------- parts, figures, charts


def test_a_part_that_cannot_be_read_says_so_and_the_rest_is_shown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ledger = SqliteLedger(home / "spend.sqlite3")
    ledger.record_feedback(5, "+1", 7)
    ledger.close()
    status, _, html = page(settings_for(home, store="opensearch", opensearch_url="http://127.0.0.1:9",
                                        opensearch_max_retries=0, opensearch_timeout=2))
    assert status == 200
    assert re.search(r'<p class="error">Repositories: unavailable \(\w+; reference [0-9a-f]+ in the logs\)</p>', html)
    assert "👍 7" in html


def test_this_process_model_calls_and_latency_come_from_its_metrics(tmp_path: Path) -> None:
    region = f"status-test-{time.time_ns()}"
    for seconds, outcome in ((0.02, "ok"), (0.03, "ok"), (0.04, "ok"), (4.0, "throttled")):
        metrics.LLM_CALLS.labels(region=region, outcome=outcome).inc()
        metrics.LLM_LATENCY.labels(region=region).observe(seconds)
    _, _, html = page(settings_for(tmp_path / "home"))
    [row] = re.findall(rf'<tr class="process-region-row"><td><code>{region}</code></td>(.*?)</tr>', html, re.S)
    cells = re.findall(r'<td class="n">([^<]*)</td>', row)
    assert cells == ["3", "1", "0", "0", "≤ 50 ms", "≤ 5.0 s", "1.0 s"]


def test_quantiles_are_the_bucket_bounds_that_hold_them() -> None:
    buckets = [(0.1, 5.0), (1.0, 9.0), (10.0, 10.0), (float("inf"), 10.0)]
    assert quantile_bound(buckets, 0.5) == 0.1 and quantile_bound(buckets, 0.9) == 1.0
    assert quantile_bound(buckets, 0.95) == 10.0 and quantile_bound([], 0.5) is None
    assert quantile_bound([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_charts_are_svg_whose_bars_follow_the_values_and_escape_their_labels() -> None:
    chart = bar_chart("runs <b>", ["06-01", "<x>"], [("ok", "ok", [2, 4]), ("bad", "bad", [0, 4])], str)
    heights = [float(h) for h in re.findall(r'<rect class="s-\w+" [^>]*height="([\d.]+)"', chart)]
    assert len(heights) == 3 and heights[0] * 2 == pytest.approx(heights[1]) == pytest.approx(heights[2])
    assert "<x>" not in chart and "&lt;x&gt;" in chart and "runs &lt;b&gt;" in chart
    assert "nothing yet" in bar_chart("empty", ["06-01"], [("ok", "ok", [0])], str)
    bars = hbar_chart("regions", [("us-east-1", [8, 1, 1]), ("<eu>", [0, 0, 5])],
                      [("ok", "ok"), ("throttled", "warn"), ("failed", "bad")], str)
    widths = [float(w) for w in re.findall(r'<rect class="s-\w+" [^>]*width="([\d.]+)"', bars)]
    assert widths[0] == pytest.approx(8 * widths[1]) and widths[3] == pytest.approx(5 * widths[1])
    assert "&lt;eu&gt;" in bars and 'class="s-warn"' in bars


def test_status_json_adds_the_ledger_and_keeps_its_contract(tmp_path: Path) -> None:
    home = tmp_path / "home"
    index_state(home, Repository(7, "acme/shop", INSTALLATION), "main", "c" * 40)
    ledger = SqliteLedger(home / "spend.sqlite3")
    ledger.record_run(RunSummary("9-1", 7, "acme/shop", INSTALLATION, "main", "c" * 40, time.time(),
                                 outcome="success", functions_added=4))
    ledger.record_feedback(7, "+1", 2)
    ledger.record_feedback(7, "-1", 1)
    ledger.record_spend(INSTALLATION, 0.5)
    ledger.close()
    status = ragcode_json("status", "--json", env=clean_environment(RAGCODE_HOME=str(home)), cwd=tmp_path)
    assert status["repositories"][0]["branches"]["main"]["commit"] == "c" * 40
    assert set(status["queue"]) == {"queued", "running", "parked"}
    assert [(run["id"], run["functions_added"]) for run in status["runs"]] == [("9-1", 4)]
    assert status["feedback"] == {"+1": 2, "-1": 1}
    assert status["spending"] == [{"installation": INSTALLATION, "month_usd": 0.5}]
    json.dumps(status)

    empty = tmp_path / "empty"
    nothing = ragcode_json("status", "--json", env=clean_environment(RAGCODE_HOME=str(empty)), cwd=tmp_path)
    assert (nothing["runs"], nothing["feedback"], nothing["spending"]) == ([], {}, [])
    assert not empty.exists(), "status only reads"


def test_commits_behind_are_counted_in_the_mirror_between_commit_ids_only(tmp_path: Path) -> None:
    source = make_repo(tmp_path / "src", {"a.py": "A = 1\n"})
    first = source.head.commit.hexsha
    (tmp_path / "src" / "a.py").write_text("A = 2\n")
    source.index.add(["a.py"])
    second = source.index.commit("two").hexsha
    mirror = Mirrors(tmp_path / "mirrors", allow_file_urls=True).sync(1, f"file://{tmp_path / 'src'}", None)
    assert commits_between(mirror, first, second) == 1 and commits_between(mirror, second, first) == 0
    assert commits_between(mirror, "--all" + "0" * 35, second) is None, "only commit ids reach git"
    assert commits_between(mirror, first, "f" * 40) is None, "a commit the mirror lacks"
