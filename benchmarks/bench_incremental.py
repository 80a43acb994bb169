"""One-function change on a ~20k-function repository vs a ~2k-function one.

Run: .venv/bin/python benchmarks/bench_incremental.py
Targets: exactly one summary per run, and time(large) / time(small) <= 1.5.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import git
from corpus import REPO, build_repository, ensure_indexed

from bot.indexer.chunker import chunk_file

SIZES = (2_000, 20_000)
ROUNDS = 5


def shared_files() -> list[str]:
    """Python files of the small corpus: the large one holds them too, so both runs change the same code."""
    small = git.Repo(build_repository(SIZES[0]))
    return sorted(path for path in small.git.ls_files().splitlines() if path.endswith(".py"))


def change_one_function(repo: git.Repo, round_number: int, files: list[str]) -> str:
    """Edit the body of one function (in a different file each round) and commit."""
    root = Path(repo.working_tree_dir)
    path = files[(round_number * 7919) % len(files)]
    text = (root / path).read_text(encoding="utf-8")
    unit = next(u for u in chunk_file(path, text) if u.kind in ("function", "method"))
    lines = text.splitlines(keepends=True)
    indent = " " * (len(lines[unit.end_line - 1]) - len(lines[unit.end_line - 1].lstrip()))
    lines.insert(unit.end_line, f"{indent}_benchmark_marker = {round_number}  # changed by the benchmark\n")
    (root / path).write_text("".join(lines), encoding="utf-8")
    repo.git.add(path)
    repo.index.commit(f"bench change {round_number}")
    return f"{path}::{unit.name}"


def measure(functions: int) -> dict:
    """Median seconds of a one-function incremental run, and the summaries each run made."""
    from bot.indexer.pipeline import index_branch

    runtime, repo, _ = ensure_indexed(functions)
    runtime.embedder.embed_query("warm-up")
    runtime.text_model.summarize([], "ko")
    total = runtime.store.branch_state(REPO.id, "main").functions
    seconds, summaries = [], []
    files = shared_files()
    for round_number in range(ROUNDS):
        change_one_function(repo, round_number, files)
        started = time.perf_counter()
        report = index_branch(runtime, repo, REPO, "main", repo.head.commit.hexsha)
        seconds.append(time.perf_counter() - started)
        summaries.append(report.summaries_generated)
    runtime.close()
    return {"functions": total, "median": statistics.median(seconds), "summaries": summaries}


def main() -> None:
    """Print the figures."""
    small, large = (measure(size) for size in SIZES)
    ratio = large["median"] / small["median"]
    print(f"small repository: {small['functions']:>6} documents, one-function run {small['median'] * 1000:.0f} ms "
          f"(median of {ROUNDS}), summaries per run {small['summaries']}")
    print(f"large repository: {large['functions']:>6} documents, one-function run {large['median'] * 1000:.0f} ms "
          f"(median of {ROUNDS}), summaries per run {large['summaries']}")
    exactly_one = all(count == 1 for count in small["summaries"] + large["summaries"])
    print(f"time ratio large/small: {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}); "
          f"exactly one summary per run: {'yes' if exactly_one else 'NO'}")


if __name__ == "__main__":
    main()
