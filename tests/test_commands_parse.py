"""Parsing ``/ragcode`` comments."""

from __future__ import annotations

import pytest

from bot.commands.parse import Command, help_text, is_command, parse_command


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/ragcode help", Command("help")),
        ("/ragcode", Command("help")),
        ("  /ragcode   \n", Command("help")),
        ("/RAGCODE Help", Command("help")),
        ("/ragcode reindex", Command("reindex")),
        ('/ragcode search "retry with backoff"', Command("search", "retry with backoff")),
        ("/ragcode search", Command("help")),
        ("/ragcode 재시도 로직이 있는 HTTP 클라이언트를 만들어 줘", Command("generate", "재시도 로직이 있는 HTTP 클라이언트를 만들어 줘")),
        ("/ragcode don't retry on 404\nand log it", Command("generate", "don't retry on 404\nand log it")),
        ("/ragcode reindex everything please", Command("generate", "reindex everything please")),
    ],
)
def test_commands(body, expected):
    assert parse_command(body) == expected


@pytest.mark.parametrize("body", ["", None, "ragcode help", "please /ragcode help", "/ragcodes help", "/rag code"])
def test_not_commands(body):
    assert not is_command(body)
    assert parse_command(body) is None


def test_help_in_both_languages():
    assert "/ragcode search" in help_text("ko") and "검색" in help_text("ko")
    assert "/ragcode reindex" in help_text("en")
