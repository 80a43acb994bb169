"""The SQS + DynamoDB queue against moto's server: first the AWS semantics the design relies on, then the
queue contract both backends keep, then what only the SQS backend does (leases, progress, parking)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from bot.config import Settings
from bot.queue import JobSpec, Queue
from bot.queue.sqlite import JobQueue
from bot.queue.sqs import SqsQueue, job_id
from tests.aws_standin import Stack, clients, create_stack


def sqs_settings(stack: Stack, **changes: object) -> Settings:
    values: dict[str, object] = dict(store="opensearch", opensearch_url="http://127.0.0.1:9", queue="sqs",
                                     sqs_queue_url=stack.queue_url, dynamodb_table=stack.table, sqs_wait_seconds=0,
                                     sqs_visibility_seconds=30, job_backoff_seconds=1.0)
    return Settings(**(values | changes))  # type: ignore[arg-type]


def push(repo_id: int, branch: str, after: str, *, full: bool = False) -> JobSpec:
    payload = {"repo": f"o/r{repo_id}", "repo_id": repo_id, "branch": branch, "after": after, "full": full}
    return JobSpec("index", f"o/r{repo_id}", payload, repo_id=repo_id, serial=f"repo:{repo_id}",
                   scope=f"{repo_id}:{branch}", coalesce=f"index:{repo_id}:{branch}")


def command(n: int) -> JobSpec:
    return JobSpec("command", "o/r1", {"text": f"question {n}"}, repo_id=1)


def claim_soon(queue: Queue, timeout: float = 10.0):
    """The next job, polling (SQS answers short polls; a backoff may still be running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = queue.claim()
        if job is not None:
            return job
        time.sleep(0.2)
    return None


@pytest.fixture
def stack(moto_server) -> Stack:
    return create_stack(moto_server, visibility=30, max_receives=3)


@pytest.fixture
def sqs_queue(stack, aws_env) -> Iterator[SqsQueue]:
    queue = SqsQueue(sqs_settings(stack))
    yield queue
    queue.close()


@pytest.fixture(params=["sqlite", "sqs"])
def queue(request, tmp_path: Path) -> Iterator[Queue]:
    """Each backend in turn."""
    if request.param == "sqlite":
        backend: Queue = JobQueue(tmp_path / "q.sqlite3", max_attempts=3, backoff=1.0)
    else:
        backend = request.getfixturevalue("sqs_queue")
    yield backend
    backend.close()


# ---------------------------------------------------------------- what AWS documents and moto holds


def test_fifo_groups_keep_order_and_hold_while_a_message_is_in_flight(stack, moto_server):
    sqs, _ = clients(moto_server)
    for n, group in enumerate(["a", "b", "a", "a"]):
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=f"{group}{n}", MessageGroupId=group,
                         MessageDeduplicationId=f"d{n}")
    first = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    assert first["Body"] == "a0"
    second = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    assert second["Body"] == "b1", "group a is held while a0 is in flight; b runs in parallel"
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)
    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=first["ReceiptHandle"])
    third = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    assert third["Body"] == "a2"


def test_visibility_can_be_extended_and_a_message_comes_back_with_its_receive_count(stack, moto_server):
    sqs, _ = clients(moto_server)
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="job", MessageGroupId="g", MessageDeduplicationId="1")
    message = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=1,
                                  MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                  VisibilityTimeout=30)
    time.sleep(1.5)
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url), "the extension held"
    sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                  VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=stack.queue_url,
                                MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert again["Body"] == "job" and again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(stack, moto_server):
    sqs, _ = clients(moto_server)
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="poison", MessageGroupId="g", MessageDeduplicationId="1")
    for _ in range(stack.max_receives):
        message = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0)["Messages"][0]
        assert message["Body"] == "poison"
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url)
    parked = sqs.receive_message(QueueUrl=stack.dead_letter_url)["Messages"][0]
    assert parked["Body"] == "poison"


def test_conditional_writes_refuse_a_second_writer_and_cap_a_counter(stack, moto_server):
    _, dynamodb = clients(moto_server)
    item = {"pk": {"S": "delivery#1"}, "sk": {"S": "-"}}
    dynamodb.put_item(TableName=stack.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=stack.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    outcomes = []
    for _ in range(3):
        try:
            dynamodb.update_item(TableName=stack.table, Key={"pk": {"S": "rate"}, "sk": {"S": "1"}},
                                 UpdateExpression="ADD used :one", ConditionExpression="attribute_not_exists(used)"
                                 " OR used < :limit", ExpressionAttributeValues={":one": {"N": "1"},
                                                                                 ":limit": {"N": "2"}})
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)
    assert outcomes == [True, True, False]


# ---------------------------------------------------------------- the contract of both backends


def test_a_redelivery_by_id_or_by_body_is_not_queued_twice(queue):
    first = queue.enqueue("d-1", "push", [push(1, "main", "a1")], body_hash="h1")
    again = queue.enqueue("d-1", "push", [push(1, "main", "a1")], body_hash="h1")
    replay = queue.enqueue("d-2", "push", [push(1, "main", "a1")], body_hash="h1")
    assert first.new and not again.new and not replay.new
    assert again.jobs == first.jobs == replay.jobs
    job = claim_soon(queue)
    assert job is not None and job.payload["after"] == "a1" and job.attempts == 1
    queue.finish(job.id)
    assert queue.claim() is None


def test_runs_of_one_repository_are_serial_while_others_and_commands_run_alongside(queue):
    a1 = queue.enqueue("d-1", "push", [push(1, "main", "a1")]).jobs[0]
    queue.enqueue("d-2", "push", [push(1, "dev", "a2")])
    queue.enqueue("d-3", "push", [push(2, "main", "b1")])
    queue.enqueue("d-4", "issue_comment", [command(4)])
    running = claim_soon(queue)
    assert running.id == a1
    others = [claim_soon(queue, 3), claim_soon(queue, 3)]
    assert sorted(job.kind for job in others) == ["command", "index"]
    assert [job.repo_id for job in others if job.kind == "index"] == [2]
    assert queue.claim() is None, "the second run of repository 1 waits for the first"
    queue.finish(running.id)
    nxt = claim_soon(queue)
    assert nxt is not None and nxt.payload["after"] == "a2"


def test_failures_are_retried_then_parked_with_their_error(queue):
    job_number = queue.enqueue("d-1", "push", [push(1, "main", "a1")]).jobs[0]
    queue.enqueue("d-2", "push", [push(2, "main", "b1")])
    states = []
    for attempt in (1, 2, 3):
        job = claim_soon(queue)
        while job is not None and job.repo_id == 2:  # the other repository's run goes on meanwhile
            queue.finish(job.id)
            job = claim_soon(queue)
        assert job is not None and (job.id, job.attempts) == (job_number, attempt)
        states.append(queue.fail(job.id, f"RuntimeError: boom {attempt}"))
    assert states == ["queued", "queued", "parked"]
    assert queue.claim() is None
    assert queue.counts() == {"queued": 0, "running": 0, "parked": 1}
    [parked] = queue.parked()
    assert (parked["id"], parked["repo_id"], parked["error"]) == (job_number, 1, "RuntimeError: boom 3")


def test_a_released_job_is_taken_again_at_once_with_its_progress(queue):
    queue.enqueue("d-1", "push", [push(1, "main", "a1")])
    job = claim_soon(queue)
    queue.update_payload(job.id, {"check_run": {"id": 7, "head": "a1"}})
    queue.release(job.id)
    again = claim_soon(queue, 3)
    assert again is not None and again.id == job.id
    assert again.payload["check_run"] == {"id": 7, "head": "a1"} and again.payload["after"] == "a1"


def test_full_index_pending_until_the_full_run_finishes(queue):
    queue.enqueue("d-1", "installation", [push(1, "main", "a1", full=True)])
    assert queue.full_index_pending(1) and not queue.full_index_pending(2)
    job = claim_soon(queue)
    assert queue.full_index_pending(1)
    queue.finish(job.id)
    assert not queue.full_index_pending(1)


def test_index_pending_while_any_run_of_the_repository_is_queued_or_running(queue):
    queue.enqueue("d-1", "push", [push(1, "main", "a1"), command(1)])
    assert queue.index_pending(1) and not queue.index_pending(2) and not queue.full_index_pending(1)
    jobs = [claim_soon(queue), claim_soon(queue)]
    assert queue.index_pending(1)
    for job in jobs:
        queue.finish(job.id)
    assert not queue.index_pending(1)


def test_replies_are_remembered_newest_first_until_they_expire(queue):
    for number in range(5):
        queue.record_reply({"kind": "issue", "id": 100 + number, "repo": "o/r1", "repo_id": 1, "installation": 9,
                            "number": 3, "at": 1_700_000_000 + number}, ttl=60)
    queue.record_reply({"kind": "review", "id": 200, "repo": "o/r1", "repo_id": 1, "installation": 9,
                        "number": 4, "at": 1_700_000_010}, ttl=1)
    assert [(r["kind"], r["id"]) for r in queue.recent_replies(3)] == [("review", 200), ("issue", 104),
                                                                      ("issue", 103)]
    time.sleep(2.1)
    assert [r["id"] for r in queue.recent_replies(10)] == [104, 103, 102, 101, 100]


def test_rate_limits_per_user_and_per_repository(queue):
    allowed = [queue.record_command(1, "alice", per_user=2, per_repo=3) for _ in range(3)]
    assert allowed == [True, True, False]
    assert queue.record_command(1, "bob", per_user=2, per_repo=3) is True
    assert queue.record_command(1, "carol", per_user=2, per_repo=3) is False
    assert queue.record_command(2, "alice", per_user=2, per_repo=3) is True


def test_remember_is_true_once_until_it_expires(queue):
    assert queue.remember("redelivered-abc", 2) is True
    assert queue.remember("redelivered-abc", 2) is False
    assert queue.remember("redelivered-def", 2) is True
    time.sleep(3.1)
    assert queue.remember("redelivered-abc", 2) is True


def test_ping_and_counts(queue):
    assert queue.ping()
    queue.enqueue("d-1", "push", [push(1, "main", "a1")])
    assert queue.counts() == {"queued": 1, "running": 0, "parked": 0}
    claim_soon(queue)
    assert queue.counts() == {"queued": 0, "running": 1, "parked": 0}


# ---------------------------------------------------------------- only the SQS backend


def test_a_late_copy_of_a_finished_job_is_deleted_and_a_copy_of_a_running_one_waits(sqs_queue, stack, moto_server,
                                                                                   aws_env):
    sqs, _ = clients(moto_server)
    other = SqsQueue(sqs_settings(stack))
    done = sqs_queue.enqueue("d-1", "push", [push(1, "main", "a1")]).jobs[0]
    sqs_queue.finish(claim_soon(sqs_queue).id)
    running_id = sqs_queue.enqueue("d-2", "push", [push(2, "main", "b1")]).jobs[0]
    running = claim_soon(sqs_queue)
    assert running.id == running_id
    # SQS delivers at least once: copies of both messages arrive (other groups, so nothing holds them back)
    for number, repo_id in ((done, 1), (running_id, 2)):
        body = {"id": number, "kind": "index", "repo": f"o/r{repo_id}", "repo_id": repo_id, "delivery": "copy",
                "payload": {"after": "x"}}
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(body), MessageGroupId=f"copy-{number}",
                         MessageDeduplicationId=f"copy-{number}")
    assert other.claim() is None and other.claim() is None and other.claim() is None
    assert other.counts() == {"queued": 0, "running": 2, "parked": 0}, "the running job's copy waits for its lease"
    sqs_queue.finish(running.id)
    other.close()


def test_a_job_whose_worker_was_killed_is_taken_over_after_the_visibility_timeout(stack, aws_env):
    short = SqsQueue(sqs_settings(stack, sqs_visibility_seconds=2))
    short.enqueue("d-1", "push", [push(1, "main", "a1")])
    job = claim_soon(short)
    short.update_payload(job.id, {"check_run": {"id": 9, "head": "a1"}})
    # the worker dies here: no heartbeat, no release
    successor = SqsQueue(sqs_settings(stack))
    assert successor.claim() is None
    again = claim_soon(successor, 10)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert again.payload["check_run"] == {"id": 9, "head": "a1"}
    successor.finish(again.id)
    assert successor.counts() == {"queued": 0, "running": 0, "parked": 0}


def test_heartbeats_keep_a_long_job_claimed(stack, aws_env):
    short = SqsQueue(sqs_settings(stack, sqs_visibility_seconds=2))
    other = SqsQueue(sqs_settings(stack))
    short.enqueue("d-1", "push", [push(1, "main", "a1")])
    job = claim_soon(short)
    for _ in range(4):
        time.sleep(0.8)
        short.heartbeat(job.id)
        assert other.claim() is None
    short.finish(job.id)
    assert other.claim() is None and other.counts()["running"] == 0


def test_a_delivery_recorded_by_a_receiver_that_stopped_before_sending_is_sent_by_its_redelivery(
        sqs_queue, stack, moto_server):
    _, dynamodb = clients(moto_server)
    number = job_id("d-1", 0)
    dynamodb.put_item(TableName=stack.table, Item={
        "pk": {"S": "delivery#d-1"}, "sk": {"S": "-"}, "jobs": {"L": [{"N": str(number)}]},
        "delivery": {"S": "d-1"}, "event": {"S": "push"}, "received_at": {"N": str(int(time.time()) - 120)},
        "sent": {"BOOL": False}})
    again = sqs_queue.enqueue("d-1", "push", [push(1, "main", "a1")])
    assert again.jobs == [number] and again.new
    job = claim_soon(sqs_queue)
    assert job.id == number and job.payload["after"] == "a1"
    assert not sqs_queue.enqueue("d-1", "push", [push(1, "main", "a1")]).new


def test_a_queue_without_a_dead_letter_queue_is_refused_naming_the_variable(moto_server, aws_env):
    sqs, _ = clients(moto_server)
    url = sqs.create_queue(QueueName="no-redrive.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    stack = Stack(url, "", create_stack(moto_server).table, 0)
    queue = SqsQueue(sqs_settings(stack))
    queue.enqueue("d-1", "issue_comment", [command(1)])  # the receiver needs nothing more
    with pytest.raises(Exception, match="RAGCODE_SQS_QUEUE_URL: .* no redrive policy"):
        queue.claim()
