"""A first index on the embedded default: functions per second on every core, and the time to a first answer.

Run: ``.venv/bin/python benchmarks/bench_first_index.py [--functions 1000] [--large 20000]``

1. The bundled model's compute limit on this machine: texts per second one single-threaded model embeds (typical
   embedding texts of the corpus), times the cores.
2. A first index of a corpus of ``--functions`` functions (real Python files from site-packages, see corpus.py),
   twice on fresh stores: with one embedding process (how every run embedded before: one core) and with one per
   core. Functions per second of each, and the ratio (target ≥ 1.8 on 2 cores).
3. With ``--large N`` (e.g. 20000): a first index of N functions, printing when it became searchable by keyword
   (target ≤ 60 s for 20k functions on 2 cores), when a query asked meanwhile got its first answer (keyword
   candidates, the best 16 without a vector embedded at query time), and when the index was complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import git
from corpus import REPO, build_repository

from bot.commands.retrieve import retrieve
from bot.config import Settings
from bot.embed.local import LocalEmbedder
from bot.indexer.chunker import chunk_file
from bot.indexer.pipeline import IndexReport, index_branch
from bot.indexer.plan import embedding_text
from bot.llm.offline import extractive_summary
from bot.runtime import Runtime


def compute_limit(path: Path, sample: int = 200) -> float:
    """Texts per second of one single-threaded model on the corpus's own embedding texts."""
    texts = []
    for file in sorted(path.rglob("*.py")):
        for unit in chunk_file(file.relative_to(path).as_posix(), file.read_text(encoding="utf-8", errors="replace")):
            texts.append(embedding_text(unit.name, extractive_summary(unit, "ko")))
            if len(texts) >= sample:
                break
        if len(texts) >= sample:
            break
    model = LocalEmbedder(processes=1)
    model.embed_documents(texts[:8])  # load it
    started = time.perf_counter()
    model.embed_documents(texts)
    return len(texts) / (time.perf_counter() - started)


QUESTION = "parse the arguments of a command line"  # asked while the first index is being completed


@dataclass
class FirstAnswer:
    """When a query asked during the run was first answered, and with how many results."""

    seconds: float = 0.0
    results: int = 0
    complete: bool = False  # the index was already complete when it answered


def first_index(path: Path, processes: int, ask: bool = False) -> tuple[IndexReport, FirstAnswer]:
    """A first index of the corpus on a fresh embedded store; with ``ask``, a query polls the store from another
    thread and is answered as soon as the branch is recorded (searchable by keyword)."""
    home = Path(tempfile.mkdtemp(prefix="ragcode-first-index-"))
    try:
        runtime = Runtime(Settings(home=home, embed_processes=processes))
        first = FirstAnswer()
        done = threading.Event()
        started = time.monotonic()

        def asker() -> None:
            while not done.is_set():
                state = runtime.store.branch_state(REPO.id, "main")
                if state is not None:
                    hits = retrieve(runtime, REPO.id, "main", QUESTION)
                    first.seconds, first.results = time.monotonic() - started, len(hits)
                    first.complete = state.complete
                    return
                time.sleep(0.1)

        watcher = threading.Thread(target=asker, daemon=True)
        if ask:
            runtime.embedder.embed_query(QUESTION)  # loaded before the run, as in a server
            watcher.start()
        try:
            report = index_branch(runtime, git.Repo(path), REPO, "main", git.Repo(path).head.commit.hexsha)
            done.set()
            if ask:
                watcher.join()
            return report, first
        finally:
            runtime.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    """Print the figures; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--large", type=int, default=0, help="also time a first index of this many functions")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    path = build_repository(args.functions)
    limit = compute_limit(path)
    print(f"bundled model, one single-threaded process: {limit:.1f} texts/s; {cores} cores: "
          f"compute limit {limit * cores:.1f} texts/s")
    one, _ = first_index(path, 1)
    every, _ = first_index(path, cores)
    rates = [report.functions_total / report.seconds for report in (one, every)]
    ratio = rates[1] / rates[0]
    print(f"first index of {one.functions_total} functions, 1 embedding process:  {one.seconds:.1f} s, "
          f"{rates[0]:.1f} functions/s (searchable after {one.searchable_seconds:.1f} s)")
    print(f"first index of {every.functions_total} functions, {cores} embedding processes: {every.seconds:.1f} s, "
          f"{rates[1]:.1f} functions/s (searchable after {every.searchable_seconds:.1f} s)")
    print(f"speed-up {ratio:.2f}x (target >= 1.8x on 2 cores); {rates[1] / (limit * cores):.0%} of the compute limit")
    ok = ratio >= 1.8 or cores < 2
    if args.large:
        large, first = first_index(build_repository(args.large), cores, ask=True)
        print(f"first index of {large.functions_total} functions: searchable by keyword after "
              f"{large.searchable_seconds:.1f} s (target <= 60 s), complete after {large.seconds:.1f} s "
              f"({large.functions_total / large.seconds:.1f} functions/s)")
        state = "complete" if first.complete else "still being completed"
        print(f"a query asked during the run ('{QUESTION}'): answered after {first.seconds:.1f} s with "
              f"{first.results} results (index {state})")
        ok = ok and large.searchable_seconds <= 60
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
