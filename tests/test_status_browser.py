"""The status page in a real browser: a real ``ragcode serve`` with ``RAGCODE_ADMIN_TOKEN`` indexes a repository
through the GitHub stand-in, and Debian's headless Chromium loads ``/status`` with the bearer token, on a
phone's screen and a desktop's. The rendered DOM is checked and screenshots are saved in the test's folder."""

from __future__ import annotations

import json
import re
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import git
import pytest

from bot.spend import SqliteLedger
from tests.bedrock_standin import BedrockStandin, RegionConfig
from tests.browser import Chromium
from tests.github_standin import installation_payload
from tests.processes import Server, app_settings, clean_environment, commit_files

pytestmark = pytest.mark.slow

INSTALLATION = 88
TOKEN = "browser-status-token-0123456789abcdef"
CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "korean_corpus" / "shop"

# What the test reads from the rendered page (DevTools evaluates it; the page itself runs no script).
READ_PAGE = """JSON.stringify({
  title: document.title,
  repoRows: [...document.querySelectorAll('tr.repo-row')].map(r => r.innerText),
  runRows: [...document.querySelectorAll('tr.run-row')].map(r => r.innerText),
  charts: [...document.querySelectorAll('svg.chart')].map(s => s.querySelectorAll('rect').length),
  chartWidths: [...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width),
  feedback: document.querySelector('#feedback').innerText,
  cost: document.querySelector('#cost').innerText,
  regions: document.querySelector('#regions').innerText,
  queue: document.querySelector('#queue').innerText,
  scripts: document.scripts.length,
  pageWidth: document.documentElement.scrollWidth,
  bodyWidth: document.body.scrollWidth,
  viewport: window.innerWidth,
  fontSize: parseFloat(getComputedStyle(document.querySelector('td')).fontSize),
})"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log").start()
    yield chromium
    chromium.stop()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_status_page_renders_in_headless_chromium(tmp_path: Path, github, keys, browser: Chromium) -> None:
    source = git.Repo.init(tmp_path / "shop", initial_branch="main")
    commit_files(source, {f"shop/{name}": (CORPUS / name).read_text(encoding="utf-8")
                          for name in ("coupons.py", "orders.py")}, "shop")
    repo = github.add_repo("acme/shop", f"file://{tmp_path / 'shop'}")
    home = tmp_path / "home"
    # two regions, one that throttles above two calls in flight: the page has model calls, throttles and cost
    bedrock = BedrockStandin({"us-east-1": RegionConfig(latency=0.05, limit=2),
                              "us-west-2": RegionConfig(latency=0.02)}).__enter__()
    env = clean_environment(
        RAGCODE_HOME=str(home), RAGCODE_ADMIN_TOKEN=TOKEN, RAGCODE_LLM="bedrock",
        RAGCODE_BEDROCK_REGIONS="us-east-1,us-west-2", RAGCODE_BEDROCK_CONCURRENCY="4",
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.url, AWS_ACCESS_KEY_ID="AKIDSTANDIN",
        AWS_SECRET_ACCESS_KEY="standin-secret", AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        **app_settings(github, keys[0]))
    server = Server(env, tmp_path / "serve.log", tmp_path).start()
    try:
        assert server.deliver("installation", installation_payload([repo], INSTALLATION)).status_code == 202
        server.wait_idle(timeout=180)
        # a push GitHub has and the service has not heard of yet: the page shows the branch behind its head
        head = commit_files(source, {"shop/extra.py": "def extra():\n    return 1\n"}, "not delivered")
        ledger = SqliteLedger(home / "spend.sqlite3")  # reactions as another process records them
        ledger.record_feedback(repo.id, "+1", 2)
        ledger.record_feedback(repo.id, "-1", 1)
        ledger.close()

        browser.viewport(390, 844, mobile=True)
        refused = browser.open(f"{server.url}/status")
        assert refused["status"] == 401 and refused["headers"]["www-authenticate"].startswith("Bearer")
        response = browser.open(f"{server.url}/status", {"Authorization": f"Bearer {TOKEN}"})
        assert response["status"] == 200 and "default-src 'none'" in response["headers"]["content-security-policy"]
        phone = json.loads(browser.evaluate(READ_PAGE))
        phone_shot = browser.screenshot(tmp_path / "status-phone.png")

        browser.viewport(1280, 900, mobile=False)
        browser.open(f"{server.url}/status", {"Authorization": f"Bearer {TOKEN}"})
        desktop = json.loads(browser.evaluate(READ_PAGE))
        desktop_shot = browser.screenshot(tmp_path / "status-desktop.png")
        refusals = browser.refusals()
    finally:
        server.stop()
        bedrock.__exit__(None, None, None)

    assert bedrock.errors == [] and github.errors == []
    assert phone["title"] == "ragcode status" and phone["scripts"] == 0
    [row] = phone["repoRows"]
    assert "acme/shop" in row and "main" in row and f"head {head[:12]}" in row and "(GitHub)" in row
    assert "complete" in row
    [run] = phone["runRows"]
    assert "acme/shop" in run and "full index" in run and "success" in run
    assert len(phone["charts"]) == 3 and all(bars >= 1 for bars in phone["charts"]), "runs, cost and regions drawn"
    assert "👍 2 · 👎 1 · 67% positive" in phone["feedback"]
    assert re.search(rf"{INSTALLATION}\tacme/shop\t\$0\.0\d*[1-9]", phone["cost"]), phone["cost"]
    assert "No monthly budget is set" in phone["cost"]
    for region in ("us-east-1", "us-west-2"):
        assert re.search(rf"^{region}\t[1-9]", phone["regions"], re.M), phone["regions"]
    assert "This process since it started" in phone["regions"] and "0 queued · 0 running · 0 parked" in phone["queue"]
    assert phone["viewport"] == 390 and phone["pageWidth"] <= 390 and phone["bodyWidth"] <= 390, \
        "nothing overflows a phone's width: wide tables scroll inside their own box"
    assert all(0 < width <= 390 for width in phone["chartWidths"]) and phone["fontSize"] >= 12
    assert desktop["viewport"] == 1280 and desktop["pageWidth"] <= 1280 and desktop["repoRows"] == phone["repoRows"]
    assert refusals == [], "the browser refused nothing: no CSP violation, no error"
    assert png_size(phone_shot)[0] == 780 and png_size(phone_shot)[1] > 844  # twice the pixels, the whole page
    assert png_size(desktop_shot)[0] == 1280


def test_the_refusal_check_sees_a_style_the_policy_does_not_allow(browser: Chromium) -> None:
    # the negative control of the check above: the same policy over a style sheet it does not hash
    from bot.status_page import CONTENT_SECURITY_POLICY

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>x</title><style>body{color:red}</style><p>x</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert browser.open(f"http://127.0.0.1:{server.server_address[1]}/")["status"] == 200
        assert browser.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"
        assert any("ContentSecurityPolicy" in refusal for refusal in browser.refusals())
    finally:
        server.shutdown()
        server.server_close()
