"""A real-code corpus for the benchmarks: Python files from this machine's site-packages, committed to git."""

from __future__ import annotations

import shutil
import sys
import sysconfig
import time
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.documents import Repository  # noqa: E402
from bot.indexer.chunker import chunk_file  # noqa: E402
from bot.indexer.filters import IndexOptions, path_skip_reason  # noqa: E402
from bot.indexer.pipeline import IndexReport, index_branch  # noqa: E402
from bot.runtime import Runtime  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
REPO = Repository.local("bench/site-packages")


def build_repository(functions: int) -> Path:
    """A git repository of real Python files holding at least ``functions`` function units (made once)."""
    target = CACHE / f"corpus-{functions}"
    if (target / ".git").is_dir():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = Path(sysconfig.get_paths()["purelib"])
    count = 0
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source).as_posix()
        if path_skip_reason(relative, IndexOptions()) or path.stat().st_size > 256 * 1024:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        units = [u for u in chunk_file(relative, text) if u.kind in ("function", "method")]
        if not units:
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
        count += len(units)
        if count >= functions:
            break
    repo = git.Repo.init(target, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "bench").release()
        config.set_value("user", "email", "bench@example.com").release()
    repo.git.add(A=True)
    repo.index.commit("corpus")
    return target


def runtime_for(functions: int) -> Runtime:
    """A runtime whose embedded store lives in the benchmark cache."""
    return Runtime(Settings(home=CACHE / f"home-{functions}"))


def ensure_indexed(functions: int) -> tuple[Runtime, git.Repo, IndexReport | None]:
    """The corpus of ``functions`` functions, indexed (the first time takes minutes: every function is embedded)."""
    path = build_repository(functions)
    repo = git.Repo(path)
    runtime = runtime_for(functions)
    report = None
    state = runtime.store.branch_state(REPO.id, "main")
    if state is None or state.commit != repo.head.commit.hexsha:
        started = time.monotonic()
        print(f"indexing the {functions}-function corpus once (cached in {CACHE})…", flush=True)
        report = index_branch(runtime, repo, REPO, "main", repo.head.commit.hexsha)
        print(f"  {report.functions_total} documents in {time.monotonic() - started:.0f}s", flush=True)
    return runtime, repo, report
