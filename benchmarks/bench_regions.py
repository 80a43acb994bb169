"""Multi-region summarization throughput against the stand-in Bedrock server.

512 functions, 4 regions with 400 ms latency each and a limit of 8 calls in flight (429 above it).
Scenario 1: all regions healthy; wall time must be at most 1.25 × 512 × 0.4 / (4 × 8) s = 8.0 s.
Scenario 2: one region down (503) from the start; at most 1.25 × the three-region ideal (≤ 10.67 s).
Scenario 3 (informational, no target): RAGCODE_BEDROCK_CONCURRENCY=16 against the limit of 8, so every region
throttles and AIMD keeps probing around the real limit; shows what a too-high setting costs.
Scenario 4 (informational): embedding 2,048 texts (half Korean) with Titan v2, one text per call, and with Cohere
Embed v3, 96 texts per call, through the same scheduler and regions; calls and wall time of each.
Scenario 5: the whole ``ragcode index`` command (a new process: start-up, git, chunking, summaries, Titan
embeddings at 60 ms with their own quota, writing) on a repository of the same 512 functions; its stages overlap,
so it must also stay within 1.25 × 6.40 s.
Run: ``.venv/bin/python benchmarks/bench_regions.py`` (exit status 1 if a target is missed or a summary is lost).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import git

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings  # noqa: E402
from bot.documents import Unit  # noqa: E402
from bot.embed.bedrock import BedrockEmbedder, CohereEmbedder  # noqa: E402
from bot.llm.bedrock import BedrockTextModel  # noqa: E402
from tests.bedrock_standin import RegionConfig, serve, standin_summary  # noqa: E402

FUNCTIONS = 512
REGIONS = ("us-east-1", "us-west-2", "ap-northeast-1", "eu-central-1")
LATENCY = 0.4
LIMIT = 8
SLACK = 1.25


def units() -> list[Unit]:
    """512 distinct functions."""
    return [
        Unit(f"pkg/module_{i // 16}.py", "python", "function", f"handler_{i}", 1, 3,
             f"def handler_{i}(event):\n    return event.get({i!r})\n")
        for i in range(FUNCTIONS)
    ]


@contextmanager
def standin(regions: dict[str, RegionConfig]) -> Iterator[Callable[[], dict[str, Any]]]:
    """The stand-in in its own process, as Bedrock would be (its work must not compete for this one's GIL), its
    address in ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``; yields a function that reads its statistics."""
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    server = context.Process(target=serve, args=(regions, child_conn), daemon=True)
    server.start()
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = conn.recv()

    def stats() -> dict[str, Any]:
        conn.send("stats")
        report: dict[str, Any] = conn.recv()
        return report

    try:
        yield stats
    finally:
        conn.send("stop")
        server.join(timeout=5)


def embeddings() -> bool:
    """Scenario 4: the same texts through Titan v2 and Cohere Embed v3; True when no vector is missing."""
    texts = [f"장바구니 {i}번 상품의 총액을 계산합니다" if i % 2 else f"handler_{i} reads the event" for i in range(2048)]
    regions = {name: RegionConfig(latency=0.1, limit=LIMIT) for name in REGIONS}
    print("\ninformational: 2,048 texts embedded, 4 regions, 100 ms a call, 8 in flight each")
    ok = True
    for label, make in (("Titan v2 (1 text a call)", BedrockEmbedder),
                        ("Cohere Embed v3 (96 texts a call)", CohereEmbedder)):
        with standin(regions):
            model = "cohere.embed-multilingual-v3" if make is CohereEmbedder else "amazon.titan-embed-text-v2:0"
            embedder = make(Settings(embedder="bedrock", bedrock_regions=REGIONS, bedrock_embed_model=model))
            started = time.perf_counter()
            vectors = embedder.embed_documents(texts)
            wall = time.perf_counter() - started
        usage = embedder.usage()
        calls = sum(int(figures["calls"]) for figures in usage.values())
        tokens = sum(int(figures["input_tokens"]) for figures in usage.values())
        ok = ok and vectors.shape == (len(texts), embedder.dimension) and bool((vectors != 0).any(axis=1).all())
        print(f"  {label:<36} wall {wall:6.2f} s   calls {calls:5}   input tokens {tokens}")
    return ok


def run(title: str, down: set[str], concurrency: int = LIMIT, timed: bool = True) -> bool:
    """One scenario; prints its figures and says whether it met its target (only losses count if not ``timed``)."""
    regions = {name: RegionConfig(latency=LATENCY, limit=LIMIT, down=name in down) for name in REGIONS}
    work = units()
    with standin(regions) as stats_of_standin:
        settings = Settings(llm="bedrock", bedrock_regions=REGIONS, bedrock_concurrency=concurrency)
        model = BedrockTextModel(settings)
        started = time.perf_counter()
        result = model.summarize(work, "ko")
        wall = time.perf_counter() - started
        report = stats_of_standin()
    usage = model.usage()
    stats = report["stats"]
    healthy = len(REGIONS) - len(down)
    ideal = FUNCTIONS * LATENCY / (healthy * LIMIT)
    lost = [u.name for u in work if result.summaries.get(u.hash) != standin_summary(u.name, korean=True)]
    served = sum(len(region["summarized"]) for region in stats.values())
    ok = (wall <= SLACK * ideal or not timed) and not lost and not result.failed and not report["errors"]
    print(f"\n{title}")
    target = f"target ≤ {SLACK * ideal:.2f} s" if timed else "no time target"
    print(f"  wall {wall:.2f} s   ideal {ideal:.2f} s   ratio {wall / ideal:.3f}   {target}   {'OK' if ok else 'MISSED'}")
    print(f"  summarized {len(result.summaries)}/{FUNCTIONS}   lost {len(lost)}   failed {len(result.failed)}"
          f"   summaries served {served}   invalid requests {len(report['errors'])}")
    print(f"  {'region':<16}{'calls':>7}{'ok':>6}{'throttles':>11}{'errors':>8}{'max in flight':>15}")
    for name in REGIONS:
        print(f"  {name:<16}{usage[name]['calls']:>7}{stats[name]['ok']:>6}{usage[name]['throttles']:>11}"
              f"{usage[name]['errors']:>8}{stats[name]['max_inflight']:>15}")
    return ok


def whole_command() -> bool:
    """Scenario 5: ``python -m bot index`` as a user runs it, timed from the process start to its exit."""
    regions = {name: RegionConfig(latency=LATENCY, limit=LIMIT, embed_latency=0.06, embed_limit=32) for name in REGIONS}
    with standin(regions) as stats_of_standin, tempfile.TemporaryDirectory(prefix="ragcode-regions-") as folder:
        root = Path(folder) / "repo"
        root.mkdir()
        for module in range(FUNCTIONS // 16):
            (root / f"module_{module:02d}.py").write_text("".join(
                f"def handler_{module * 16 + n}(event):\n    return event.get({module * 16 + n!r})\n\n\n"
                for n in range(16)))
        repo = git.Repo.init(root, initial_branch="main")
        repo.git.add(A=True)
        repo.git.commit("-m", "functions", env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
                                               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"})
        # the stand-in's address reaches the command in AWS_ENDPOINT_URL_BEDROCK_RUNTIME
        env = {**os.environ,
               "RAGCODE_HOME": str(Path(folder) / "home"), "RAGCODE_LLM": "bedrock", "RAGCODE_EMBEDDER": "bedrock",
               "RAGCODE_BEDROCK_REGIONS": ",".join(REGIONS), "RAGCODE_BEDROCK_CONCURRENCY": str(LIMIT)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bot", "index", str(root), "--repo", "bench/regions",
                               "--json"], env=env, capture_output=True, text=True, cwd=folder)
        wall = time.perf_counter() - started
        report = stats_of_standin()
    if done.returncode != 0:
        print(done.stderr)
        return False
    result = json.loads(done.stdout)
    ideal = FUNCTIONS * LATENCY / (len(REGIONS) * LIMIT)
    ok = wall <= SLACK * ideal and result["summaries_generated"] == FUNCTIONS and not result["functions_failed"]
    print("\nScenario 5: the whole `ragcode index` command, 512 functions, 4 regions (Titan embeddings at 60 ms)")
    print(f"  wall {wall:.2f} s   ideal {ideal:.2f} s   ratio {wall / ideal:.3f}   target ≤ {SLACK * ideal:.2f} s   "
          f"{'OK' if ok else 'MISSED'}")
    print(f"  summarized {result['summaries_generated']}   failed {len(result['functions_failed'])}   searchable after "
          f"{result['searchable_seconds']:.2f} s   the run {result['seconds']:.2f} s of the process's {wall:.2f} s   "
          f"invalid requests {len(report['errors'])}")
    return ok and not report["errors"]


def main() -> int:
    """All scenarios; exit status 0 when the timed ones meet their targets and nothing is lost."""
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s")
    os.environ.update(
        AWS_ACCESS_KEY_ID="AKIDBENCHMARK", AWS_SECRET_ACCESS_KEY="benchmark", AWS_SESSION_TOKEN="",
        AWS_CONFIG_FILE=os.path.join(tempfile.gettempdir(), "ragcode-none"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(tempfile.gettempdir(), "ragcode-none"),
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    results = [
        run("4 regions healthy (400 ms, 8 in flight each)", set()),
        run("1 region down from the start (503), 3 healthy", {"eu-central-1"}),
        run("informational: client set to 16 in flight per region against the limit of 8", set(), 16, timed=False),
        embeddings(),
        whole_command(),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
