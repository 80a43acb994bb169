"""The durable job queue: deduplication, serialization, coalescing, restarts, retries and parking."""

from __future__ import annotations

import threading
import time

from bot.queue import JobSpec
from bot.queue.sqlite import JobQueue

IDS = {"o/a": 1, "o/b": 2}


def push(repo: str, branch: str, after: str, *, full: bool = False) -> JobSpec:
    payload = {"repo": repo, "branch": branch, "after": after, "full": full}
    return JobSpec("index", repo, payload, repo_id=IDS[repo], serial=f"repo:{repo}", scope=f"{repo}:{branch}",
                   coalesce=f"index:{repo}:{branch}")


def test_a_redelivered_delivery_is_not_queued_twice(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    first = queue.enqueue("d-1", "push", [push("o/a", "main", "a1")])
    again = queue.enqueue("d-1", "push", [push("o/a", "main", "a1")])
    assert first.new and not again.new
    assert again.jobs == first.jobs
    assert queue.counts() == {"queued": 1, "running": 0, "parked": 0}


def test_queued_pushes_to_one_branch_coalesce_to_the_newest_head(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    ids, others = [], []
    for n in range(5):  # pushes to two branches of one repository, interleaved
        ids.append(queue.enqueue(f"d-{n}", "push", [push("o/a", "main", f"sha{n}")]).jobs[0])
        others.append(queue.enqueue(f"d-dev-{n}", "push", [push("o/a", "dev", f"dev{n}")]).jobs[0])
    assert len(set(ids)) == 1 and len(set(others)) == 1 and others[0] != ids[0]
    assert queue.counts()["queued"] == 2
    job = queue.claim()
    assert job.payload["after"] == "sha4"
    assert job.deliveries == [f"d-{n}" for n in range(5)]


def test_a_push_never_jumps_over_a_later_job_of_the_same_repository(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    first = queue.enqueue("d-1", "push", [push("o/a", "feature", "f1")]).jobs[0]
    drop = JobSpec("drop_branch", "o/a", {"branch": "feature"}, serial="repo:o/a", scope="o/a:feature")
    queue.enqueue("d-2", "push", [drop])
    recreated = queue.enqueue("d-3", "push", [push("o/a", "feature", "f2")]).jobs[0]
    assert recreated != first
    kinds = []
    while (job := queue.claim()) is not None:
        kinds.append(job.kind)
        queue.finish(job.id)
    assert kinds == ["index", "drop_branch", "index"]


def test_one_run_at_a_time_per_repository_but_commands_run_alongside(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    queue.enqueue("d-1", "push", [push("o/a", "main", "a1")])
    running = queue.claim()
    queue.enqueue("d-2", "push", [push("o/a", "main", "a2")])  # cannot merge into a running job
    queue.enqueue("d-3", "push", [push("o/b", "main", "b1")])
    queue.enqueue("d-4", "issue_comment", [JobSpec("command", "o/a", {"text": "hi"})])
    claimed = [queue.claim(), queue.claim(), queue.claim()]
    assert [job.repo for job in claimed if job] == ["o/b", "o/a"]
    assert claimed[1].kind == "command" and claimed[2] is None
    queue.finish(running.id)
    assert queue.claim().payload["after"] == "a2"


def test_jobs_left_running_by_a_killed_process_resume_after_a_restart(tmp_path):
    path = tmp_path / "q.sqlite3"
    queue = JobQueue(path)
    queue.enqueue("d-1", "push", [push("o/a", "main", "a1")])
    assert queue.claim() is not None
    del queue  # the process dies with the job running

    reopened = JobQueue(path)
    assert reopened.counts()["running"] == 1
    assert reopened.recover() == 1
    job = reopened.claim()
    assert job is not None and job.payload["after"] == "a1"
    assert reopened.enqueue("d-1", "push", [push("o/a", "main", "a1")]).new is False


def test_failures_back_off_then_park_and_show_in_counts(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3", max_attempts=3, backoff=0.05)
    job_id = queue.enqueue("d-1", "push", [push("o/a", "main", "a1")]).jobs[0]
    states = []
    for _ in range(3):
        deadline = time.time() + 5
        while (job := queue.claim()) is None and time.time() < deadline:
            time.sleep(0.01)
        assert job is not None and job.id == job_id
        states.append(queue.fail(job.id, "RuntimeError: boom"))
    assert states == ["queued", "queued", "parked"]
    assert queue.counts() == {"queued": 0, "running": 0, "parked": 1}
    assert queue.parked()[0]["error"] == "RuntimeError: boom"
    assert queue.requeue_parked() == 1 and queue.claim().id == job_id


def test_a_failed_job_waits_for_its_backoff(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3", backoff=60)
    queue.enqueue("d-1", "push", [push("o/a", "main", "a1")])
    queue.fail(queue.claim().id, "boom")
    assert queue.claim() is None and queue.counts()["queued"] == 1


def test_a_full_run_stays_full_when_a_push_coalesces_into_it(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    queue.enqueue("d-1", "installation", [push("o/a", "main", "a1", full=True)])
    assert queue.full_index_pending(1)
    queue.enqueue("d-2", "push", [push("o/a", "main", "a2")])
    job = queue.claim()
    assert job.payload["full"] is True and job.payload["after"] == "a2"
    assert queue.full_index_pending(1)
    queue.finish(job.id)
    assert not queue.full_index_pending(1)


def test_rate_limits_per_user_and_per_repository(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")
    allowed = [queue.record_command(1, "alice", per_user=2, per_repo=3) for _ in range(3)]
    assert allowed == [True, True, False]
    assert queue.record_command(1, "bob", per_user=2, per_repo=3) is True
    assert queue.record_command(1, "carol", per_user=2, per_repo=3) is False
    assert queue.record_command(2, "alice", per_user=2, per_repo=3) is True


def test_concurrent_enqueues_from_threads_lose_nothing(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3")

    def send(start: int) -> None:
        for n in range(start, start + 50):
            queue.enqueue(f"d-{n}", "issue_comment", [JobSpec("command", "o/a", {"n": n})])

    threads = [threading.Thread(target=send, args=(k * 50,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.counts()["queued"] == 400


def test_a_job_that_keeps_killing_the_process_is_parked_not_retried_forever(tmp_path):
    path = tmp_path / "q.sqlite3"
    queue = JobQueue(path, max_attempts=3)
    job_id = queue.enqueue("d-1", "push", [push("o/a", "main", "a1")]).jobs[0]
    queue.enqueue("d-2", "push", [push("o/b", "main", "b1")])
    for attempt in range(1, 4):
        job = queue.claim()
        assert job is not None and (job.id, job.attempts) == (job_id, attempt)
        queue = JobQueue(path, max_attempts=3)  # the process dies mid-job and restarts
        queue.recover()
    assert queue.counts() == {"queued": 1, "running": 0, "parked": 1}
    [parked] = queue.parked()
    assert parked["id"] == job_id and parked["attempts"] == 3 and "stopped during each" in parked["error"]
    assert queue.claim().repo == "o/b", "the other work goes on"


def test_a_later_job_never_overtakes_one_waiting_in_backoff_for_the_same_repository(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3", backoff=60)
    forget = JobSpec("forget", "o/a", {"repo": "o/a"}, repo_id=1, serial="repo:o/a", scope="o/a:*")
    queue.enqueue("d-1", "installation_repositories", [forget])
    queue.fail(queue.claim().id, "GitHub unreachable")  # the forget waits a minute before its retry
    queue.enqueue("d-2", "installation_repositories", [push("o/a", "main", "a1", full=True)])
    queue.enqueue("d-3", "push", [push("o/b", "main", "b1")])
    assert queue.claim().repo == "o/b"
    assert queue.claim() is None, "the re-index of o/a waits behind its repository's forget"


def test_a_coalesced_run_starts_fresh_and_hands_over_the_check_run_it_supersedes(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite3", backoff=0)
    first = queue.enqueue("d-1", "push", [push("o/a", "main", "a1")]).jobs[0]
    job = queue.claim()
    queue.update_payload(job.id, {"check_run": {"id": 7, "head": "a1"}})
    queue.fail(job.id, "boom")
    assert queue.enqueue("d-2", "push", [push("o/a", "main", "a2")]).jobs == [first]
    again = queue.claim()
    assert again.attempts == 1 and again.payload["after"] == "a2"
    assert "check_run" not in again.payload
    assert again.payload["superseded_checks"] == [{"id": 7, "head": "a1"}]
