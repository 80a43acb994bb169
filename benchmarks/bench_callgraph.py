"""What the receivers of method calls change in the call graph: links by name alone vs by name and receiver.

Every function of a source tree (default: this repository's ``bot/`` and the installed httpx package) is chunked
as the indexer does, and each call is resolved among the tree's functions twice with ``bot/commands/related.py``:
by name only (as before receivers were recorded) and with what it was called on. It prints how many links each
makes and a fixed sample of the links that only one of them makes, to be read by a person: no type checker
stands by as ground truth.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from bench_chunking import source_files  # noqa: E402

from bot.commands.related import callable_name, called, resolve  # noqa: E402
from bot.documents import DocumentRef, short_name  # noqa: E402
from bot.indexer.chunker import chunk_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
Link = tuple[str, str, str, str]  # (caller path:name, called name, receivers, callee id)


def units_of(root: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(path, qualified name, calls) of every unit under ``root``."""
    found = []
    for path in source_files(str(root)):
        relative = os.path.relpath(path, root)
        with open(path, "rb") as handle:
            source = handle.read().decode("utf-8", "replace")
        found += [(relative, unit.name, unit.calls) for unit in chunk_file(relative, source)]
    return found


def links(root: Path) -> tuple[int, set[Link], set[Link]]:
    """The number of units, and the callee links by name only and by name and receiver."""
    units = units_of(root)
    definitions: dict[str, list[tuple[str, DocumentRef]]] = {}
    for path, name, _ in units:
        if callable_name(name):
            ref = DocumentRef(id=f"{path}:{name}", path=path, name=name, content_hash="", start_line=1, end_line=1)
            definitions.setdefault(short_name(name), []).append(("main", ref))
    by_name: set[Link] = set()
    by_receiver: set[Link] = set()
    for path, caller, calls in units:
        call = called(calls)
        for name in call.names:
            candidates = [c for c in definitions.get(name, []) if c[1].id != f"{path}:{caller}"]
            hints, receivers = call.hints.get(name, set()), call.receivers.get(name, set())
            key = f"{path}:{caller}", name, ",".join(sorted(receivers))
            by_name |= {(*key, c[1].id) for c in resolve(path, hints, candidates)}
            by_receiver |= {(*key, c[1].id) for c in resolve(path, hints, candidates, caller_name=caller,
                                                               receivers=receivers)}
    return len(units), by_name, by_receiver


def main() -> int:
    """Print the links of each tree and a sample of those that differ."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("roots", nargs="*", type=Path, default=[ROOT / "bot", Path(httpx.__file__).parent])
    parser.add_argument("--sample", type=int, default=15, help="links shown of each kind that differ (seeded)")
    args = parser.parse_args()
    for root in args.roots:
        units, by_name, by_receiver = links(root)
        dropped, added = sorted(by_name - by_receiver), sorted(by_receiver - by_name)
        print(f"{root}: {units} units; callee links by name {len(by_name)}, by name and receiver "
              f"{len(by_receiver)} ({len(dropped)} dropped, {len(added)} added)")
        sample = random.Random(1)
        for title, rows in (("dropped", dropped), ("added", added)):
            print(f"  {title} (caller, called name, receivers, linked function):")
            for caller, name, receivers, callee in sample.sample(rows, min(args.sample, len(rows))):
                print(f"    {caller}  {name}^{receivers or '-'}  ->  {callee}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
