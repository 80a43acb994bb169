"""The AWS shape as real processes: one receiver and two ``ragcode worker`` processes on SQS and DynamoDB (moto's
server), the OpenSearch stand-in as their shared store, the GitHub and Bedrock stand-ins. Twenty repositories
with interleaved pushes, force-pushes and redeliveries converge to their heads; runs of one repository never
overlap; every job runs to the end once; a worker killed with SIGKILL mid-index loses nothing, and a worker told
to stop (SIGTERM) releases its job and exits 0."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import git
import pytest

from bot.config import Settings
from bot.store.opensearch import OpenSearchStore
from tests import opensearch_spec
from tests.aws_standin import create_stack
from tests.bedrock_standin import BedrockStandin, RegionConfig
from tests.github_standin import GitHubStandIn, generate_private_key, installation_payload, push_payload
from tests.opensearch_standin import StandIn, serve
from tests.scaleout_harness import APP_ID, Process, cluster_env, deliver, log_time

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not opensearch_spec.available(),
                                                   reason="no OpenSearch API specification")]
INSTALLATION = 88
REPOSITORIES = 20


def write(repo: git.Repo, files: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    repo.index.add(list(files))
    return repo.index.commit(message).hexsha


def module(n: int, version: int, functions: int = 3) -> str:
    return "\n\n".join(f"def task_{n}_{k}(value):\n    \"\"\"Step {k} of task {n}, version {version}.\"\"\"\n"
                       f"    return value * {k + version}\n" for k in range(functions))


def test_twenty_repositories_converge_on_two_workers_through_a_kill_and_a_stop(tmp_path, moto_server):
    private, public = generate_private_key()
    stack = create_stack(moto_server, visibility=6)
    rng = random.Random(7)
    github = GitHubStandIn(APP_ID, public).start()
    search = StandIn()
    regions = {"us-east-1": RegionConfig(latency=0.05, limit=64)}
    processes: list[Process] = []
    try:
        with serve(search) as opensearch_url, BedrockStandin(regions) as bedrock:
            sources, repos = {}, {}
            for n in range(REPOSITORIES):
                sources[n] = git.Repo.init(tmp_path / f"src{n}", initial_branch="main")
                write(sources[n], {f"pkg/task_{n}.py": module(n, 0)}, "first")
                repos[n] = github.add_repo(f"acme/repo-{n:02d}", f"file://{tmp_path / f'src{n}'}")
            big_source = git.Repo.init(tmp_path / "big", initial_branch="main")
            write(big_source, {f"big/mod_{m:02d}.py": module(100 + m, 0, functions=6) for m in range(60)}, "big")
            big = github.add_repo("acme/big", f"file://{tmp_path / 'big'}")

            def env(name: str) -> dict[str, str]:
                return cluster_env(tmp_path / name, github_url=github.url, private_key=private,
                                   opensearch_url=opensearch_url, bedrock_url=bedrock.url, aws=moto_server.env(),
                                   stack_env=stack.settings_env(), RAGCODE_WORKERS="2",
                                   RAGCODE_SQS_VISIBILITY_SECONDS="6", RAGCODE_WORKER_GRACE_SECONDS="0")

            receiver = Process("receiver", ["serve", "--no-workers"], env("receiver"), tmp_path / "receiver.log")
            workers = [Process(f"worker-{k}", ["worker"], env(f"worker-{k}"), tmp_path / f"worker-{k}.log")
                       for k in range(2)]
            processes += [receiver, *workers]
            for process in processes:
                process.start()

            acks: dict[str, list[int]] = {}  # delivery -> jobs, from the receiver's 202 answers
            duplicates = 0
            answer = deliver(receiver.url, "installation", installation_payload([*repos.values(), big], INSTALLATION))
            assert answer.status_code == 202
            acks[answer.json()["delivery"]] = answer.json()["jobs"]

            # interleaved pushes: two rounds over every repository, every fifth a force-push, some redelivered
            heads = {n: sources[n].head.commit.hexsha for n in repos}
            pushed: dict[int, list[str]] = defaultdict(list)
            for round_ in (1, 2):
                for n in rng.sample(range(REPOSITORIES), REPOSITORIES):
                    forced = (n + round_) % 5 == 0 and round_ == 2
                    before = heads[n]
                    if forced:  # rewrite the last commit: the old head disappears from the branch
                        sources[n].git.reset("--hard", "HEAD~1")
                    head = write(sources[n], {f"pkg/task_{n}.py": module(n, round_ * 10 + int(forced))},
                                 f"round {round_}")
                    heads[n] = head
                    pushed[n].append(head)
                    payload = push_payload(repos[n], INSTALLATION, "main", before, head, forced=forced)
                    delivery = f"push-{n}-{round_}"
                    answer = deliver(receiver.url, "push", payload, delivery)
                    assert answer.status_code == 202, answer.text
                    acks[delivery] = answer.json()["jobs"]
                    if n % 4 == 0:  # GitHub redelivers it: acknowledged, never queued again
                        again = deliver(receiver.url, "push", payload, delivery)
                        assert again.status_code == 200 and again.json()["job"] == acks[delivery][0]
                        duplicates += 1

            # a worker dies with SIGKILL in the middle of the big repository's first index
            victim = wait_for_start(workers, big.id, timeout=120)
            time.sleep(1.0)
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.time()

            store = OpenSearchStore(Settings(store="opensearch", opensearch_url=opensearch_url,
                                             opensearch_index_prefix="scale"))
            expected = {repos[n].id: heads[n] for n in repos} | {big.id: big_source.head.commit.hexsha}
            converge(store, expected, timeout=240)

            # a worker told to stop (SIGTERM) while indexing releases its job and exits 0; the other takes it
            survivor = next(w for w in workers if w is not victim)
            replacement = Process("worker-2", ["worker"], env("worker-2"), tmp_path / "worker-2.log").start()
            processes.append(replacement)
            head = write(big_source, {f"big/mod_{m:02d}.py": module(100 + m, 1, functions=6) for m in range(30)},
                         "rework")
            answer = deliver(receiver.url, "push", push_payload(big, INSTALLATION, "main", expected[big.id], head),
                             "push-big-2")
            acks["push-big-2"] = answer.json()["jobs"]
            stopping = wait_for_start([survivor, replacement], big.id, timeout=60, job=acks["push-big-2"][0])
            stopping.signal(signal.SIGTERM)
            assert stopping.wait(30) == 0
            assert any(e["message"] == "released a job on shutdown" for e in stopping.entries())
            expected[big.id] = head
            converge(store, expected, timeout=120)
            store.close()
            for process in processes:
                process.stop()

        entries = {w.name: w.entries() for w in [*workers, replacement]}
        check_runs_never_overlap(entries, victim.name, killed_at)
        done = Counter(e["job"] for log in entries.values() for e in log if e["message"] == "job done")
        every_job = {job for jobs in acks.values() for job in jobs}
        assert set(done) == every_job and set(done.values()) == {1}, "each job ran to its end once"
        assert duplicates >= 5
        # every pushed commit has a completed check run: indexed, or covered by a newer push that was
        big_checks = [c for c in github.checks_for("acme/big") if c["head_sha"] == expected[big.id]]
        assert [c["conclusion"] for c in big_checks] == ["success"], "resumed runs report in their check run"
        for n, commits in pushed.items():
            runs = {c["head_sha"]: c for c in github.checks_for(repos[n].full_name)}
            for sha in commits:
                assert runs.get(sha, {}).get("status") == "completed", (n, sha, list(runs))
            assert runs[heads[n]]["conclusion"] == "success"
        covered = [c for c in github.check_runs.values() if c["output"]["title"] == "Covered by a newer push"]
        assert all(c["conclusion"] == "neutral" for c in covered)
        assert github.errors == [] and search.problems == [] and bedrock.errors == []
    finally:
        for process in processes:
            process.stop()
        github.stop()


def wait_for_start(workers: list[Process], repo_id: int, timeout: float, job: int | None = None) -> Process:
    """The worker whose log shows a job of the repository started (and not done)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for worker in workers:
            entries = worker.entries()
            started = [e["job"] for e in entries if e["message"] == "job started" and e.get("repo_id") == repo_id
                       and e.get("kind") == "index" and (job is None or e["job"] == job)]
            ended = {e["job"] for e in entries if e["message"] in ("job done", "job failed")}
            if [number for number in started if number not in ended]:
                return worker
        time.sleep(0.1)
    raise AssertionError(f"no worker started a run of repository {repo_id}")


def converge(store: OpenSearchStore, expected: dict[int, str], timeout: float) -> None:
    """Until every repository's main branch is indexed at its head, completely."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        behind = {repo_id: head for repo_id, head in expected.items()
                  if (state := store.branch_state(repo_id, "main")) is None or state.commit != head
                  or not state.complete}
        if not behind:
            return
        time.sleep(0.5)
    raise AssertionError(f"{len(behind)} repositories did not converge: {behind}")


def check_runs_never_overlap(entries: dict[str, list[dict]], killed: str, killed_at: float) -> None:
    """Per repository, the runs (job started → done, failed, released or killed) of all workers are disjoint."""
    intervals: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for name, log in entries.items():
        open_runs: dict[int, tuple[float, int]] = {}
        for entry in log:
            if entry.get("kind") in ("index", "drop_branch") and entry["message"] == "job started":
                open_runs[entry["job"]] = (log_time(entry), entry["repo_id"])
            elif entry["message"] in ("job done", "job failed", "released a job on shutdown") \
                    and entry.get("job") in open_runs:
                start, repo_id = open_runs.pop(entry["job"])
                intervals[repo_id].append((start, log_time(entry), name))
        for start, repo_id in open_runs.values():  # cut short by the kill
            assert name == killed, f"{name} left a run open"
            intervals[repo_id].append((start, killed_at, name))
    assert len(intervals) == REPOSITORIES + 1
    for repo_id, runs in intervals.items():
        runs.sort()
        for (_, end, first), (start, _, second) in zip(runs, runs[1:], strict=False):
            assert start >= end, f"runs of repository {repo_id} overlap: {first} until {end}, {second} from {start}"
