"""Measure chunking throughput over a real source tree (default: this venv's site-packages).

Each file is read, decoded, redacted (secrets) and chunked, as the indexer does; redaction's share is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.indexer.chunker import chunk_file, language_for  # noqa: E402
from bot.indexer.secrets import redact  # noqa: E402

MAX_BYTES = 512 * 1024
TARGET_LINES_PER_SECOND = 100_000


def source_files(root: str) -> list[str]:
    """Supported files under root, largest-file limit applied, in a stable order."""
    found: list[str] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            if language_for(path) is not None and os.path.getsize(path) <= MAX_BYTES:
                found.append(path)
    return found


def main() -> int:
    """Read, decode, redact and chunk every supported file, then print the throughput."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", nargs="?", default=sysconfig.get_paths()["purelib"])
    root = parser.parse_args().root
    paths = source_files(root)
    lines = units = redacted = 0
    redact_cpu = 0.0
    by_language: dict[str, int] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for path in paths:
        with open(path, "rb") as handle:
            source = handle.read().decode("utf-8", errors="replace")
        relative = os.path.relpath(path, root)
        before = time.process_time()
        source, found = redact(source, relative)
        redact_cpu += time.process_time() - before
        redacted += found
        chunks = chunk_file(relative, source)
        lines += source.count("\n") + (not source.endswith("\n") and bool(source))
        units += len(chunks)
        if chunks:
            by_language[chunks[0].language] = by_language.get(chunks[0].language, 0) + 1
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rate = lines / seconds if seconds else float("inf")
    cpu_rate = lines / cpu_seconds if cpu_seconds else float("inf")
    print(f"root:       {root}")
    print(f"files:      {len(paths)}  ({', '.join(f'{k} {v}' for k, v in sorted(by_language.items()))})")
    print(f"lines:      {lines}")
    print(f"units:      {units}")
    print(f"redacted:   {redacted} secrets, {redact_cpu:.2f} s cpu ({lines / max(redact_cpu, 1e-9):,.0f} lines/s)")
    print(f"seconds:    {seconds:.2f} wall, {cpu_seconds:.2f} cpu")
    print(
        f"lines/s:    {rate:,.0f} wall, {cpu_rate:,.0f} cpu (cpu time is the figure to trust on a busy machine)"
    )
    verdict = "meets" if rate >= TARGET_LINES_PER_SECOND else "misses"
    print(f"target:     wall rate {verdict} {TARGET_LINES_PER_SECOND:,} lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
