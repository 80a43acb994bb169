"""Korean analysis in a process of its own (``ragcode index``): the same terms, nothing lost when it dies."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from typing import Any

from bot.text import analyze, analyze_many, analyzer_process, kiwi

TEXTS = ["요청이 실패하면 지정한 횟수만큼 다시 시도한다.", "retry_request returns the body as bytes", "",
         "`reserve_stock` 함수는 재고를 예약하고 성공 여부를 돌려줍니다."]


def run_script(body: str) -> tuple[dict[str, Any], str]:
    """``body`` run by a fresh interpreter (Kiwi not loaded yet), with TEXTS defined; its JSON output and stderr."""
    script = f"import json, multiprocessing, os, signal, sys\nimport bot.text as text\nTEXTS = {TEXTS!r}\n"
    done = subprocess.run([sys.executable, "-c", script + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_korean_texts_are_analyzed_in_the_analyzer_process_with_the_same_terms() -> None:
    found, _ = run_script("""
        with text.analyzer_process():
            children = [child.name for child in multiprocessing.active_children()]
            there = text.analyze_many(TEXTS)
            kiwi_here = "kiwipiepy" in sys.modules
        left = [child.name for child in multiprocessing.active_children()]
        print(json.dumps({"children": children, "there": there, "kiwi_here": kiwi_here, "left": left}))
    """)
    assert found["children"] == ["ragcode-analyzer"]
    assert not found["kiwi_here"], "Kiwi was never loaded in the indexing process"
    assert found["there"] == [analyze(text) for text in TEXTS]
    assert "실패" in found["there"][0] and "reserve_stock" in found["there"][3] and found["there"][2] == []
    assert found["left"] == [], "the block ends the process"


def test_a_killed_analyzer_process_loses_nothing() -> None:
    found, stderr = run_script("""
        with text.analyzer_process():
            first = text.analyze_many(TEXTS)
            child = multiprocessing.active_children()[0]
            os.kill(child.pid, signal.SIGKILL)
            second = text.analyze_many(TEXTS)
        print(json.dumps({"first": first, "second": second}))
    """)
    assert found["second"] == found["first"] == [analyze(text) for text in TEXTS]
    assert "the Korean analyzer process stopped (exit code -9); analyzing in this process" in stderr


def test_a_block_left_while_kiwi_loads_ends_the_process_at_once() -> None:
    found, _ = run_script("""
        with text.analyzer_process():
            child = multiprocessing.active_children()[0]
        print(json.dumps({"exitcode": child.exitcode, "left": len(multiprocessing.active_children())}))
    """)
    assert found == {"exitcode": -15, "left": 0}, "terminated while loading rather than waited for"


def test_where_kiwi_is_loaded_already_no_process_is_started() -> None:
    kiwi()
    with analyzer_process():
        assert not [child for child in multiprocessing.active_children() if child.name == "ragcode-analyzer"]
        assert analyze_many(TEXTS) == [analyze(text) for text in TEXTS]


def test_a_nested_block_keeps_the_outer_blocks_process() -> None:
    found, _ = run_script("""
        with text.analyzer_process():
            with text.analyzer_process():
                inner = [child.name for child in multiprocessing.active_children()]
            after_inner = [child.name for child in multiprocessing.active_children()]
            terms = text.analyze_many(TEXTS)
            kiwi_here = "kiwipiepy" in sys.modules
        print(json.dumps({"inner": inner, "after_inner": after_inner, "terms": terms, "kiwi_here": kiwi_here}))
    """)
    assert found["inner"] == found["after_inner"] == ["ragcode-analyzer"]
    assert found["terms"] == [analyze(text) for text in TEXTS] and not found["kiwi_here"]
