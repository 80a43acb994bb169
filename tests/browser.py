"""Debian's headless Chromium driven over the DevTools protocol (a WebSocket on loopback, websocket-client):
open a page with request headers, read the rendered DOM, collect what the browser refused (CSP), take
screenshots. ``make test`` installs the ``chromium`` package; nothing is downloaded at run time.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import websocket

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0"]


def chromium_path() -> str:
    """The system Chromium; a clear error when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("Debian's chromium is not installed: `make test` installs it (as root: "
                             "apt-get install chromium)")
    return path


class Chromium:
    """One headless Chromium with a fresh profile and one page, over the DevTools protocol."""

    def __init__(self, profile: Path, log: Path) -> None:
        self.profile = profile
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: websocket.WebSocket | None = None
        self.events: list[dict[str, Any]] = []
        self._ids = count(1)

    def start(self) -> Chromium:
        """Start the browser and attach to its first page."""
        self.profile.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={self.profile}",
                                             "about:blank"], stdout=out, stderr=out)
        active = self.profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (active.is_file() and active.read_text().count("\n") >= 1):
            assert self.process.poll() is None, "chromium exited:\n" + self.log.read_text()[-3000:]
            assert time.time() < deadline, "chromium did not open its DevTools port:\n" + self.log.read_text()[-3000:]
            time.sleep(0.1)
        port = int(active.read_text().splitlines()[0])
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        # Chromium refuses DevTools sockets that send an Origin it was not told to allow
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        for domain in ("Page", "Network", "Log", "Audits", "Runtime"):
            self.send(f"{domain}.enable")
        return self

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events that arrive meanwhile are kept in ``events``)."""
        assert self.socket is not None
        number = next(self._ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == number:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        """The next event ``method`` (also one that already arrived and was not waited for)."""
        assert self.socket is not None
        deadline = time.time() + timeout
        while True:
            for n, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(n)
            assert time.time() < deadline, f"no {method} within {timeout} s"
            self.socket.settimeout(max(0.1, deadline - time.time()))
            self.events.append(json.loads(self.socket.recv()))

    def viewport(self, width: int, height: int, *, mobile: bool) -> None:
        """Emulate a screen (a phone with ``mobile``: its viewport and touch layout)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=2 if mobile else 1,
                  mobile=mobile)

    def open(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Load ``url`` sending ``headers`` with every request; the main document's response (status, headers)."""
        self.events.clear()
        self.send("Network.setExtraHTTPHeaders", headers=headers or {})
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        while True:
            response = self.wait_for("Network.responseReceived")["params"]
            if response["type"] == "Document":
                document: dict[str, Any] = response["response"]
                return document

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page (DevTools may run it; the page may not)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def refusals(self) -> list[str]:
        """What the browser refused or complained about so far: Content-Security-Policy issues, console errors."""
        found = []
        for event in self.events:
            if event.get("method") == "Audits.issueAdded":
                issue = event["params"]["issue"]
                found.append(f"{issue['code']}: {json.dumps(issue.get('details', {}))[:300]}")
            elif event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error":
                found.append(event["params"]["entry"]["text"])
        return found

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport)."""
        metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def stop(self) -> None:
        """Close the connection and the browser."""
        if self.socket is not None:
            self.socket.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
