"""Scale-out: index runs per minute with 1, 2 and 4 ``ragcode worker`` processes, and the receiver's acknowledgement.

Everything on 127.0.0.1: SQS and DynamoDB are moto's server, the store is the OpenSearch stand-in, GitHub the
GitHub stand-in, and Bedrock the Bedrock stand-in in its own process answering in 400 ms with 8 calls in flight
per region over 4 regions (429 above that), so the work is waiting on the model as on AWS. Each worker process
runs one worker thread; each run is the first index of a repository of 8 functions (8 summaries and 8
embeddings). 4 workers keep at most 32 calls in flight: the regions have capacity for all of them.

Targets: 4 workers ≥ 3.2 × the runs per minute of one; p99 acknowledgement ≤ 200 ms for the receiver alone
(``ragcode serve --no-workers`` on SQS and DynamoDB: signature, conditional writes, send).
Run: ``.venv/bin/python benchmarks/bench_scaleout.py`` (exit status 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_webhooks import SECRET as BENCH_SECRET  # noqa: E402
from benchmarks.bench_webhooks import deliveries, percentile, send_all  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.store.opensearch import OpenSearchStore  # noqa: E402
from tests.aws_standin import MotoServer, create_stack  # noqa: E402
from tests.bedrock_standin import RegionConfig, serve  # noqa: E402
from tests.github_standin import GitHubStandIn, generate_private_key, installation_payload  # noqa: E402
from tests.opensearch_standin import StandIn  # noqa: E402
from tests.opensearch_standin import serve as serve_opensearch  # noqa: E402
from tests.scaleout_harness import APP_ID, Process, cluster_env, deliver  # noqa: E402

REGIONS = ("us-east-1", "us-west-2", "ap-northeast-1", "eu-central-1")
LATENCY = 0.4
LIMIT = 8
FUNCTIONS = 8
TARGET_RATIO = 3.2
TARGET_P99_MS = 200.0


def source(path: Path, n: int) -> None:
    """A repository of one module with ``FUNCTIONS`` functions."""
    repo = git.Repo.init(path, initial_branch="main")
    text = "\n\n".join(f"def handler_{n}_{k}(event):\n    \"\"\"Handle event kind {k} of service {n}.\"\"\"\n"
                       f"    return event.get({k!r}, {n})\n" for k in range(FUNCTIONS))
    (path / f"service_{n}.py").write_text(text)
    repo.index.add([f"service_{n}.py"])
    repo.index.commit("service")


def measure(workers: int, runs: int, tmp: Path, moto: MotoServer, github: GitHubStandIn, private: str,
            bedrock_url: str) -> tuple[float, float]:
    """Runs per minute with ``workers`` processes, and the seconds the batch took."""
    stack = create_stack(moto)
    github.repos.clear()
    repos = [github.add_repo(f"bench/w{workers}-repo-{n:02d}", f"file://{tmp / f'src{n}'}") for n in range(runs)]
    standin = StandIn()
    with serve_opensearch(standin) as opensearch_url:
        def env(name: str) -> dict[str, str]:
            return cluster_env(tmp / f"w{workers}-{name}", github_url=github.url, private_key=private,
                               opensearch_url=opensearch_url, bedrock_url=bedrock_url, aws=moto.env(),
                               stack_env=stack.settings_env(), RAGCODE_WORKERS="1",
                               RAGCODE_BEDROCK_REGIONS=",".join(REGIONS), RAGCODE_BEDROCK_CONCURRENCY=str(LIMIT))

        receiver = Process("receiver", ["serve", "--no-workers"], env("receiver"), tmp / f"w{workers}-receiver.log")
        pool = [Process(f"worker-{k}", ["worker"], env(f"worker-{k}"), tmp / f"w{workers}-worker-{k}.log")
                for k in range(workers)]
        try:
            for process in [receiver, *pool]:
                process.start()
            store = OpenSearchStore(Settings(store="opensearch", opensearch_url=opensearch_url,
                                             opensearch_index_prefix="scale"))
            started = time.perf_counter()
            answer = deliver(receiver.url, "installation", installation_payload(repos, 1))
            assert answer.status_code == 202, answer.text
            deadline = time.time() + 900
            while time.time() < deadline:
                done = sum(store.branch_state(repo.id, "main") is not None for repo in repos)
                if done == runs:
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            store.close()
            assert done == runs, f"{done}/{runs} runs finished"
        finally:
            for process in [receiver, *pool]:
                process.stop()
    if standin.problems:
        raise SystemExit(f"OpenSearch stand-in saw invalid requests: {standin.problems[:3]}")
    return runs / elapsed * 60, elapsed


def acknowledgements(tmp: Path, moto: MotoServer, github: GitHubStandIn, private: str, count: int,
                     senders: int) -> dict[str, float]:
    """p50/p99 acknowledgement of ``ragcode serve --no-workers`` on SQS and DynamoDB."""
    stack = create_stack(moto)
    env = cluster_env(tmp / "ack-receiver", github_url=github.url, private_key=private,
                      opensearch_url="http://127.0.0.1:9", bedrock_url="http://127.0.0.1:9", aws=moto.env(),
                      stack_env=stack.settings_env(), GITHUB_WEBHOOK_SECRET=BENCH_SECRET)
    receiver = Process("receiver", ["serve", "--no-workers"], env, tmp / "ack-receiver.log").start()
    try:
        asyncio.run(send_all("127.0.0.1", receiver.port, deliveries(50), 10))  # warm up
        latencies, errors = asyncio.run(send_all("127.0.0.1", receiver.port, deliveries(count), senders))
    finally:
        receiver.stop()
    ms = [value * 1000 for value in latencies]
    for error in errors[:3]:
        print("error:", error, file=sys.stderr)
    return {"deliveries": count, "senders": senders, "errors": len(errors), "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1)}


def main() -> int:
    """Run the benchmark; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32, help="index runs per measurement")
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--receiver-only", action="store_true", help="measure the acknowledgement alone")
    args = parser.parse_args()
    private, public = generate_private_key()
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    regions = {name: RegionConfig(latency=LATENCY, limit=LIMIT) for name in REGIONS}
    bedrock = context.Process(target=serve, args=(regions, child), daemon=True)
    bedrock.start()
    bedrock_url = conn.recv()
    github = GitHubStandIn(APP_ID, public).start()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        moto = MotoServer(tmp / "moto.log").start()
        try:
            for n in range(args.runs):
                source(tmp / f"src{n}", n)
            figures: dict[int, float] = {}
            for workers in () if args.receiver_only else (1, 2, 4):
                per_minute, seconds = measure(workers, args.runs, tmp, moto, github, private, bedrock_url)
                figures[workers] = per_minute
                print(f"{workers} worker process{'es' if workers > 1 else ''}: {args.runs} runs in {seconds:.1f} s, "
                      f"{per_minute:.1f} runs/min", flush=True)
            ack = acknowledgements(tmp, moto, github, private, args.deliveries, args.senders)
        finally:
            moto.stop()
            github.stop()
            conn.send("stats")
            stats = conn.recv()
            conn.send("stop")
            bedrock.join(5)
    throttled = sum(region["throttled"] for region in stats["stats"].values())
    if args.receiver_only:
        print(json.dumps({"receiver": ack}))
        return 0 if ack["errors"] == 0 and ack["p99_ms"] <= TARGET_P99_MS else 1
    ratio2, ratio4 = figures[2] / figures[1], figures[4] / figures[1]
    print(json.dumps({"runs_per_minute": figures, "ratio_2": round(ratio2, 2), "ratio_4": round(ratio4, 2),
                      "bedrock_throttled": throttled, "bedrock_invalid": len(stats["errors"]), "receiver": ack}))
    ok_ratio = ratio4 >= TARGET_RATIO
    ok_ack = ack["errors"] == 0 and ack["p99_ms"] <= TARGET_P99_MS
    print(f"target 4 workers >= {TARGET_RATIO} x one: {ratio4:.2f} x {'met' if ok_ratio else 'MISSED'}")
    print(f"target receiver p99 <= {TARGET_P99_MS:.0f} ms: {ack['p99_ms']} ms {'met' if ok_ack else 'MISSED'}")
    return 0 if ok_ratio and ok_ack else 1


if __name__ == "__main__":
    sys.exit(main())
