"""The queue for many workers on AWS: jobs in an SQS FIFO queue, coordination state in one DynamoDB table.

One message per job. Its message group is the job's serial key (one repository, so its runs stay serial and
in order while other repositories run in parallel on any worker) or, for commands, the job itself; its
deduplication id comes from the delivery and the job's place in it. Parked jobs are the dead-letter queue's
(the queue's redrive policy): a job received ``maxReceiveCount`` times without finishing is moved there.

Table items (partition key ``pk``, sort key ``sk``, TTL attribute ``expires_at``, no indexes):

- ``delivery#<id>`` and ``body#<sha256 of the signed body>``: a delivery seen (beyond SQS's 5-minute
  deduplication window), its job ids and whether they were sent;
- ``job#<id>``: state, attempts, lease (owner and until when), last error and progress (its check run),
  made when a worker first takes the job;
- ``repo#<id>`` / ``full#<job id>``: a full index of the repository is queued or running;
- ``repo#<id>`` / ``index#<job id>``: an index run of the repository is queued or running;
- ``replies`` / ``<time>#<kind>#<comment id>``: replies posted, for the feedback pass (expire after its window);
- ``rate#repo#<id>`` and ``rate#user#<repo id>#<login>`` / ``<window>``: command counters (conditional adds);
- ``parked`` / ``job#<id>``: parked jobs with their error, for ``ragcode status``;
- ``mark#<key>``: one-time marks (deliveries redelivered, reconcile passes).

SQS is at-least-once: the job's lease (a conditional write) keeps a message received twice from running twice,
and a finished job's record makes a late copy of its message a no-op.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.config import ConfigError, Settings
from bot.queue.base import Enqueued, Job, JobSpec

log = logging.getLogger("ragcode.queue")

DAY = 86400
DELIVERY_TTL = 7 * DAY  # deliveries are remembered this long (GitHub redelivers for 3 days)
JOB_TTL = 18 * DAY  # a job record outlives its message: 4 days in the queue, 14 in the dead-letter queue
DONE_TTL = 7 * DAY
RESEND_AFTER = 60  # seconds after which a delivery recorded but never sent is sent by its redelivery
MAX_BACKOFF = 900
_REGION = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def job_id(delivery: str, index: int) -> int:
    """The id of a delivery's ``index``-th job: the same for a redelivery, unique otherwise (48 bits)."""
    return int.from_bytes(hashlib.sha256(f"{delivery}\0{index}".encode()).digest()[:6], "big")


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serialize(value) for key, value in values.items() if value is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserialize(value) for key, value in item.items()}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass
class _Claim:
    """A message this worker holds."""

    receipt: str
    attempts: int
    kind: str
    full: bool
    repo_id: int
    progress: dict[str, Any]


class SqsQueue:
    """Jobs in ``RAGCODE_SQS_QUEUE_URL``, state in ``RAGCODE_DYNAMODB_TABLE``; safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sqs_queue_url.rstrip("/")
        self.table = settings.dynamodb_table
        self.wait = settings.sqs_wait_seconds
        self.visibility = settings.sqs_visibility_seconds
        self.backoff = settings.job_backoff_seconds
        match = _REGION.match(self.url)
        region = match[1] if match else None
        timeouts = Config(connect_timeout=5, read_timeout=self.wait + 15, retries={"mode": "standard"})
        # boto3 resolves credentials and endpoints as usual (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB).
        session = boto3.session.Session()
        try:
            self.sqs = session.client("sqs", region_name=region, config=timeouts)
            self.dynamodb = session.client("dynamodb", region_name=region, config=Config(
                connect_timeout=5, read_timeout=15, retries={"mode": "standard"}))
        except Exception as error:  # botocore.exceptions.NoRegionError and friends
            raise ConfigError(f"AWS_REGION: cannot make SQS and DynamoDB clients ({error})") from None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._claims: dict[int, _Claim] = {}
        self._lock = threading.Lock()
        self._redrive: tuple[str, int] | None = None

    # ------------------------------------------------------------------ enqueueing (the receiver)

    def enqueue(self, delivery: str, event: str, specs: Sequence[JobSpec], body_hash: str | None = None) -> Enqueued:
        """Record the delivery (a conditional put on its id, then one on its body hash), then send its jobs once."""
        now = int(time.time())
        ids = [job_id(delivery, index) for index in range(len(specs))]
        record = {"jobs": ids, "event": event, "delivery": delivery, "received_at": now, "sent": False,
                  "expires_at": now + DELIVERY_TTL}
        if not self._put_new(f"delivery#{delivery}", record):
            return self._seen(delivery, body_hash, specs, now)
        if body_hash and not self._put_new(f"body#{body_hash}", record):
            # The same signed body under a fresh delivery id: a replay. This id now stands for the first one's jobs.
            first = self._seen(delivery, body_hash, specs, now, by_body=True)
            self.dynamodb.update_item(TableName=self.table, Key=_item({"pk": f"delivery#{delivery}", "sk": "-"}),
                                      UpdateExpression="SET jobs = :jobs, sent = :yes",
                                      ExpressionAttributeValues=_item({":jobs": first.jobs, ":yes": True}))
            return first
        self._send(delivery, specs, ids)
        self._mark_sent(delivery)
        return Enqueued(ids, new=True)

    def _put_new(self, pk: str, record: dict[str, Any]) -> bool:
        """A conditional put of ``pk``; False when it exists already."""
        try:
            self.dynamodb.put_item(TableName=self.table, Item=_item({"pk": pk, "sk": "-", **record}),
                                   ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _seen(self, delivery: str, body_hash: str | None, specs: Sequence[JobSpec], now: int,
              by_body: bool = False) -> Enqueued:
        """A delivery id or body seen before: its jobs; sent now if the receiver that recorded it stopped first."""
        first = None if by_body else self._get(f"delivery#{delivery}", "-")
        if first is None and body_hash:
            seen = self._get(f"body#{body_hash}", "-")
            first = self._get(f"delivery#{seen['delivery']}", "-") if seen else None
        if first is None:
            raise RuntimeError(f"delivery {delivery}: recorded and gone again (retry the delivery)")
        ids = [int(number) for number in first["jobs"]]
        if first.get("sent") or now - int(first["received_at"]) < RESEND_AFTER or len(ids) != len(specs):
            return Enqueued(ids, new=False)
        log.warning("delivery %s was recorded but not sent; sending it now", first["delivery"])
        self._send(str(first["delivery"]), specs, ids)
        self._mark_sent(str(first["delivery"]))
        return Enqueued(ids, new=True)

    def _mark_sent(self, delivery: str) -> None:
        self.dynamodb.update_item(TableName=self.table, Key=_item({"pk": f"delivery#{delivery}", "sk": "-"}),
                                  UpdateExpression="SET sent = :yes", ExpressionAttributeValues=_item({":yes": True}))

    def add(self, spec: JobSpec, origin: str = "") -> int:
        """Queue a job no delivery carries."""
        number = secrets.randbits(48)
        self._send(origin or f"job-{number}", [spec], [number])
        return number

    def _send(self, delivery: str, specs: Sequence[JobSpec], ids: Sequence[int]) -> None:
        """Send the messages (ten a request); a job's record is made when a worker first takes it."""
        now = int(time.time())
        entries = []
        for index, (spec, number) in enumerate(zip(specs, ids, strict=True)):
            payload = {**spec.payload, "deliveries": [delivery]}
            if spec.kind == "index":
                self.dynamodb.put_item(TableName=self.table, Item=_item(
                    {"pk": f"repo#{spec.repo_id}", "sk": f"index#{number}", "expires_at": now + JOB_TTL}))
            if spec.kind == "index" and payload.get("full"):
                self.dynamodb.put_item(TableName=self.table, Item=_item(
                    {"pk": f"repo#{spec.repo_id}", "sk": f"full#{number}", "expires_at": now + JOB_TTL}))
            body = {"id": number, "kind": spec.kind, "repo": spec.repo, "repo_id": spec.repo_id,
                    "delivery": delivery, "payload": payload}
            dedup = hashlib.sha256(f"{delivery}\0{index}\0{number}".encode()).hexdigest()
            entries.append({"Id": str(index), "MessageBody": json.dumps(body, ensure_ascii=False),
                            "MessageGroupId": spec.serial or f"job-{number}", "MessageDeduplicationId": dedup})
        for start in range(0, len(entries), 10):
            answer = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries[start:start + 10])
            if answer.get("Failed"):
                failed = answer["Failed"][0]
                raise RuntimeError(f"SQS refused a job of delivery {delivery}: {failed.get('Code')} "
                                   f"{failed.get('Message', '')}")

    # ------------------------------------------------------------------ working (the workers)

    def claim(self) -> Job | None:
        """Receive the next job and take its lease; None when nothing is ready (after a short wait)."""
        for _ in range(3):  # copies of finished or leased jobs are set aside without sleeping
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=1, WaitTimeSeconds=self.wait,
                VisibilityTimeout=self.visibility, MessageSystemAttributeNames=["ApproximateReceiveCount"])
            messages = answer.get("Messages", [])
            if not messages:
                return None
            job = self._take(messages[0])
            if job is not None:
                return job
        return None

    def _take(self, message: dict[str, Any]) -> Job | None:
        try:
            body = json.loads(message["Body"])
            number, kind, payload = int(body["id"]), str(body["kind"]), dict(body["payload"])
        except (ValueError, KeyError, TypeError):
            log.error("deleting a message that is not a job: %.200s", message.get("Body"))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            return None
        attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        now = int(time.time())
        try:
            answer = self.dynamodb.update_item(
                TableName=self.table, Key=_item({"pk": f"job#{number}", "sk": "-"}),
                UpdateExpression="SET #s = :running, attempts = :attempts, #o = :me, lease_until = :until,"
                                 " updated_at = :now, kind = :kind, repo = :repo, repo_id = :repo_id,"
                                 " expires_at = :expires, created_at = if_not_exists(created_at, :now)",
                ConditionExpression="(attribute_not_exists(#s) OR #s <> :done) AND"
                                    " (attribute_not_exists(lease_until) OR lease_until < :now OR #o = :me)",
                ExpressionAttributeNames={"#s": "state", "#o": "owner"},
                ExpressionAttributeValues=_item({
                    ":running": "running", ":done": "done", ":attempts": attempts, ":me": self.owner,
                    ":until": self._lease_end(), ":now": now, ":kind": kind, ":repo": str(body.get("repo", "")),
                    ":repo_id": int(body.get("repo_id", 0)), ":expires": now + JOB_TTL}),
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            self._set_aside(number, message["ReceiptHandle"], now)
            return None
        record = _plain(answer["Attributes"])
        progress = json.loads(record.get("progress", "{}"))
        with self._lock:
            self._claims[number] = _Claim(message["ReceiptHandle"], attempts, kind, bool(payload.get("full")),
                                          int(body.get("repo_id", 0)), progress)
        if attempts >= self._max_receives():
            # Its last chance: should this worker die too, SQS parks it; say so in advance.
            self._park_record(number, body, attempts,
                              f"the worker stopped during each of {attempts} attempts (crash or kill)")
        payload.update(progress)
        return Job(number, kind, str(body.get("repo", "")), payload, attempts, str(body.get("delivery", "")),
                   list(payload.get("deliveries", [])), int(body.get("repo_id", 0)))

    def _set_aside(self, number: int, receipt: str, now: int) -> None:
        """A copy of a job that finished (delete it) or that another worker holds (hide it until its lease ends)."""
        record = self._get(f"job#{number}", "-") or {}
        if record.get("state") == "done":
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)
            log.info("job %d was already done; deleted a late copy of its message", number)
            return
        hide = max(1, min(int(record.get("lease_until", now)) - now + 1, self.visibility))
        self._change_visibility(receipt, hide)
        log.info("job %d is held by %s; its copy waits %d s", number, record.get("owner"), hide)

    def heartbeat(self, job_id: int) -> None:
        """Extend the message's visibility and the job's lease by the visibility timeout."""
        claim = self._claims.get(job_id)
        if claim is None:
            return
        self._change_visibility(claim.receipt, self.visibility)
        self._update_record(job_id, "SET lease_until = :until", {":until": self._lease_end()})

    def _lease_end(self) -> int:
        """A lease ends a second before the message's visibility does: a message that comes back is free to take
        (a copy set aside would count as a receive towards parking)."""
        return int(time.time() + self.visibility) - 1

    def release(self, job_id: int) -> None:
        """Make the message visible again now and drop the lease, so another worker takes the job at once."""
        claim = self._pop(job_id)
        if claim is None:
            return
        self._update_record(job_id, "SET #s = :queued REMOVE lease_until, #o", {":queued": "queued"})
        self._change_visibility(claim.receipt, 0)

    def update_payload(self, job_id: int, changes: dict[str, Any]) -> None:
        """Keep progress in the job's record, where a retry on any worker finds it."""
        claim = self._claims.get(job_id)
        if claim is None:
            return
        claim.progress.update(changes)
        self._update_record(job_id, "SET progress = :progress", {":progress": json.dumps(claim.progress)})

    def finish(self, job_id: int) -> None:
        """Record the job done (first, so a late copy of the message is a no-op), then delete the message."""
        claim = self._pop(job_id)
        if claim is None:
            return
        now = int(time.time())
        self._update_record(job_id, "SET #s = :done, updated_at = :now, expires_at = :expires, #e = :empty"
                                    " REMOVE lease_until, #o",
                            {":done": "done", ":now": now, ":expires": now + DONE_TTL, ":empty": ""})
        self._forget_pending(job_id, claim)
        self.dynamodb.delete_item(TableName=self.table, Key=_item({"pk": "parked", "sk": f"job#{job_id}"}))
        try:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=claim.receipt)
        except ClientError as error:  # the visibility ran out and another copy is out: the record covers it
            log.warning("could not delete the message of job %d: %s", job_id, _code(error))

    def fail(self, job_id: int, error: str) -> str:
        """Hide the message for a backoff (its repository waits too), or park it on its last attempt."""
        claim = self._pop(job_id)
        if claim is None:
            return "queued"
        now = int(time.time())
        if claim.attempts >= self._max_receives():
            record = self._get(f"job#{job_id}", "-") or {}
            self._park_record(job_id, record, claim.attempts, error)
            self._update_record(job_id, "SET #s = :parked, #e = :error, updated_at = :now REMOVE lease_until, #o",
                                {":parked": "parked", ":error": error[:2000], ":now": now})
            self._forget_pending(job_id, claim)
            self._change_visibility(claim.receipt, 0)  # the next receive moves it to the dead-letter queue
            return "parked"
        delay = int(min(self.backoff * 2 ** (max(claim.attempts, 1) - 1), MAX_BACKOFF))
        self._update_record(job_id, "SET #s = :queued, #e = :error, updated_at = :now REMOVE lease_until, #o",
                            {":queued": "queued", ":error": error[:2000], ":now": now})
        self._change_visibility(claim.receipt, max(delay, 0))
        return "queued"

    def recover(self) -> int:
        """Nothing to do: a killed worker's messages come back when their visibility runs out."""
        return 0

    def prune(self) -> None:
        """Nothing to do: old items expire by TTL."""

    def _pop(self, job_id: int) -> _Claim | None:
        with self._lock:
            return self._claims.pop(job_id, None)

    def _update_record(self, job_id: int, expression: str, values: dict[str, Any]) -> None:
        names = {name: attribute for name, attribute in (("#s", "state"), ("#o", "owner"), ("#e", "error"))
                 if name in expression}
        try:
            self.dynamodb.update_item(
                TableName=self.table, Key=_item({"pk": f"job#{job_id}", "sk": "-"}), UpdateExpression=expression,
                ConditionExpression="#o = :me", ExpressionAttributeNames={**names, "#o": "owner"},
                ExpressionAttributeValues=_item({**values, ":me": self.owner}))
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            log.warning("job %d: the lease was lost (another worker took the job over)", job_id)

    def _change_visibility(self, receipt: str, seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=seconds)
        except ClientError as error:  # deleted meanwhile, or received again by another worker
            log.warning("could not change a message's visibility: %s", _code(error))

    def _forget_pending(self, job_id: int, claim: _Claim) -> None:
        if claim.kind == "index":
            self.dynamodb.delete_item(TableName=self.table,
                                      Key=_item({"pk": f"repo#{claim.repo_id}", "sk": f"index#{job_id}"}))
        if claim.kind == "index" and claim.full:
            self.dynamodb.delete_item(TableName=self.table,
                                      Key=_item({"pk": f"repo#{claim.repo_id}", "sk": f"full#{job_id}"}))

    def _park_record(self, job_id: int, job: dict[str, Any], attempts: int, error: str) -> None:
        now = int(time.time())
        self.dynamodb.put_item(TableName=self.table, Item=_item({
            "pk": "parked", "sk": f"job#{job_id}", "id": job_id, "kind": str(job.get("kind", "")),
            "repo": str(job.get("repo", "")), "repo_id": int(job.get("repo_id", 0)), "attempts": attempts,
            "error": error[:2000], "updated_at": now, "expires_at": now + 14 * DAY}))

    def _max_receives(self) -> int:
        return self._dead_letter()[1]

    def _dead_letter(self) -> tuple[str, int]:
        """The dead-letter queue's URL and ``maxReceiveCount``, from the queue's redrive policy."""
        if self._redrive is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            if not policy:
                raise ConfigError(f"RAGCODE_SQS_QUEUE_URL: {self.url} has no redrive policy (dead-letter queue)")
            redrive = json.loads(policy)
            # A dead-letter queue lives in the queue's account and region: only its name differs.
            name = str(redrive["deadLetterTargetArn"]).rsplit(":", 1)[1]
            self._redrive = (f"{self.url.rsplit('/', 1)[0]}/{name}", int(redrive["maxReceiveCount"]))
        return self._redrive

    # ------------------------------------------------------------------ state for status, health and commands

    def counts(self) -> dict[str, int]:
        """Approximate counts from SQS: visible and delayed (queued), in flight (running), dead letters (parked)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        main = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        dead = self.sqs.get_queue_attributes(QueueUrl=self._dead_letter()[0], AttributeNames=names)["Attributes"]
        return {"queued": int(main.get(names[0], 0)) + int(main.get(names[2], 0)),
                "running": int(main.get(names[1], 0)),
                "parked": sum(int(dead.get(name, 0)) for name in names)}

    def parked(self) -> list[dict[str, Any]]:
        """Parked jobs recorded by the workers, oldest first."""
        items = self._query("parked")
        keys = ("id", "kind", "repo", "repo_id", "attempts", "error", "updated_at")
        rows = [{key: item.get(key) for key in keys} for item in items]
        for row in rows:
            for key in ("id", "repo_id", "attempts", "updated_at"):
                row[key] = int(row[key] or 0)
        return sorted(rows, key=lambda row: row["updated_at"])

    def full_index_pending(self, repo_id: int) -> bool:
        """True while a full index of the repository is queued or running."""
        return bool(self._query(f"repo#{repo_id}", prefix="full#", limit=1))

    def index_pending(self, repo_id: int) -> bool:
        """True while any index run of the repository is queued or running."""
        return bool(self._query(f"repo#{repo_id}", prefix="index#", limit=1))

    def record_reply(self, reply: dict[str, Any], ttl: float) -> None:
        """One item per reply under ``replies``, sorted by time, expiring after ``ttl``."""
        at = int(reply.get("at") or time.time())
        self.dynamodb.put_item(TableName=self.table, Item=_item({
            "pk": "replies", "sk": f"{at:012d}#{reply['kind']}#{int(reply['id'])}", "reply": json.dumps(reply),
            "expires_at": int(time.time() + ttl)}))

    def recent_replies(self, limit: int) -> list[dict[str, Any]]:
        """The newest reply items not expired (DynamoDB deletes expired items only eventually)."""
        now = int(time.time())
        answer = self.dynamodb.query(
            TableName=self.table, KeyConditionExpression="pk = :pk", FilterExpression="expires_at > :now",
            ExpressionAttributeValues=_item({":pk": "replies", ":now": now}), ScanIndexForward=False,
            Limit=limit, ConsistentRead=True)
        return [json.loads(_plain(item)["reply"]) for item in answer.get("Items", [])]

    def record_command(self, repo_id: int, user: str, *, per_user: int, per_repo: int, window: float = 3600) -> bool:
        """Count the command in this window's counters of the user and the repository, both or neither."""
        now = time.time()
        slot = int(now // window)
        expires = int((slot + 2) * window)
        updates = []
        for pk, limit in ((f"rate#repo#{repo_id}", per_repo), (f"rate#user#{repo_id}#{user[:100]}", per_user)):
            updates.append({"Update": {
                "TableName": self.table, "Key": _item({"pk": pk, "sk": str(slot)}),
                "UpdateExpression": "ADD used :one SET expires_at = :expires",
                "ConditionExpression": "attribute_not_exists(used) OR used < :limit",
                "ExpressionAttributeValues": _item({":one": 1, ":expires": expires, ":limit": limit})}})
        try:
            self.dynamodb.transact_write_items(TransactItems=updates)
        except ClientError as error:
            if _code(error) == "TransactionCanceledException":
                return False
            raise
        return True

    def remember(self, key: str, ttl: float) -> bool:
        """A conditional put of ``mark#<key>``: True for the first caller until it expires."""
        now = int(time.time())
        try:
            self.dynamodb.put_item(
                TableName=self.table, Item=_item({"pk": f"mark#{key}", "sk": "-", "expires_at": now + int(ttl)}),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues=_item({":now": now}))
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def ping(self) -> bool:
        """True when both the table and the queue answer."""
        try:
            self.dynamodb.describe_table(TableName=self.table)
            self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        except Exception:  # any failure means "not healthy"
            log.warning("queue health check failed", exc_info=True)
            return False
        return True

    def close(self) -> None:
        """Close the HTTP connections."""
        self.sqs.close()
        self.dynamodb.close()

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self.dynamodb.get_item(TableName=self.table, Key=_item({"pk": pk, "sk": sk}), ConsistentRead=True)
        return _plain(answer["Item"]) if "Item" in answer else None

    def _query(self, pk: str, prefix: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
        values = {":pk": pk, **({":prefix": prefix} if prefix else {})}
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": condition,
                                   "ExpressionAttributeValues": _item(values), "ConsistentRead": True}
        if limit:
            request["Limit"] = limit
        items: list[dict[str, Any]] = []
        while True:
            answer = self.dynamodb.query(**request)
            items += [_plain(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer or (limit and len(items) >= limit):
                return items
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
