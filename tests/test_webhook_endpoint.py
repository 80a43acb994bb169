"""The webhook endpoint under hostile clients: a real uvicorn server on loopback, raw sockets, slow bodies."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.config import Settings
from bot.webhooks.app import create_app
from bot.webhooks.signature import sign

SECRET = "endpoint secret"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    settings = Settings(home=tmp_path / "home", github_webhook_secret=SECRET, github_app_id="1",
                        github_private_key="unused", pause_workers=True, webhook_max_bytes=64 * 1024,
                        webhook_read_timeout=1.0, webhook_max_reads=2)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not instance.started and time.time() < deadline:
        time.sleep(0.02)
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    instance.should_exit = True
    thread.join(10)


def headers(length: int, signature: str | None, event: str = "ping") -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: ragcode", f"Content-Length: {length}", f"X-GitHub-Event: {event}",
             "X-GitHub-Delivery: d-1", "Content-Type: application/json"]
    if signature is not None:
        lines.append(f"X-Hub-Signature-256: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(connection: socket.socket, timeout: float) -> int:
    connection.settimeout(timeout)
    reply = connection.recv(4096)
    return int(reply.split(b" ", 2)[1])


def test_an_unsigned_delivery_is_refused_before_its_body_is_read(server):
    with socket.create_connection(server) as connection:
        connection.sendall(headers(60_000, None))  # promises a body it never sends
        started = time.monotonic()
        assert status_of(connection, 5) == 401
        assert time.monotonic() - started < 0.9, "answered without waiting for the body"


def test_an_oversized_body_is_refused_from_its_declared_length(server):
    with socket.create_connection(server) as connection:
        connection.sendall(headers(10 * 1024 * 1024, "sha256=" + "0" * 64))
        assert status_of(connection, 5) == 413


def test_a_body_that_trickles_in_is_cut_off(server):
    with socket.create_connection(server) as connection:
        connection.sendall(headers(5_000, "sha256=" + "0" * 64) + b"{")
        started = time.monotonic()
        assert status_of(connection, 5) == 408
        assert time.monotonic() - started < 3


def test_slow_uploads_beyond_the_limit_are_turned_away_and_signed_deliveries_still_get_in(server):
    slow = [socket.create_connection(server) for _ in range(2)]
    try:
        for connection in slow:
            connection.sendall(headers(5_000, "sha256=" + "0" * 64) + b"{")
        time.sleep(0.2)
        with socket.create_connection(server) as third:
            third.sendall(headers(5_000, "sha256=" + "0" * 64) + b"{")
            assert status_of(third, 5) == 503
    finally:
        for connection in slow:
            connection.close()
    time.sleep(1.2)  # the slow readers have timed out
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    with socket.create_connection(server) as connection:
        connection.sendall(headers(len(body), sign(SECRET, body)) + body)
        assert status_of(connection, 5) == 200
