"""moto's server on 127.0.0.1 as the stand-in for SQS and DynamoDB, with the queues and the table made like
``deploy/aws/ragcode.yaml`` makes them (properties read from the template).

Only what AWS documents is relied on (see ``shared/reference/moto-sqs-dynamodb.md`` for what moto does
differently): tests keep their receivers few and their polls short, and never depend on the order of a group's
messages after a visibility timeout or on SQS deduplicating a message that was already deleted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "aws" / "ragcode.yaml"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` in a subprocess on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                             str(self.port)], stdout=out, stderr=out)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("moto server did not start:\n" + self.log.read_text())

    def env(self) -> dict[str, str]:
        """The environment that points boto3 at this server (the standard variables)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_SQS": self.url, "AWS_ENDPOINT_URL_DYNAMODB": self.url}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:  # still answering a poll
                self.process.kill()
                self.process.wait(10)


@dataclass
class Stack:
    """One queue, its dead-letter queue and the table, named uniquely."""

    queue_url: str
    dead_letter_url: str
    table: str
    max_receives: int

    def settings_env(self) -> dict[str, str]:
        """``RAGCODE_*`` variables for this stack."""
        return {"RAGCODE_QUEUE": "sqs", "RAGCODE_SQS_QUEUE_URL": self.queue_url,
                "RAGCODE_DYNAMODB_TABLE": self.table}


def template_resources() -> dict[str, Any]:
    """The template's resources as plain data."""
    data: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return data


def clients(server: MotoServer) -> tuple[Any, Any]:
    """boto3 SQS and DynamoDB clients of the server."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return session.client("sqs", endpoint_url=server.url), session.client("dynamodb", endpoint_url=server.url)


def create_stack(server: MotoServer, *, visibility: int | None = None, max_receives: int | None = None) -> Stack:
    """The job queue, dead-letter queue and coordination table with the template's properties (the visibility
    timeout and receive count may be shortened for tests)."""
    template = template_resources()
    resources = template["Resources"]
    queue, dlq = resources["JobQueue"]["Properties"], resources["DeadLetterQueue"]["Properties"]
    table = resources["CoordinationTable"]["Properties"]
    receives = max_receives or int(template["Parameters"]["QueueMaxReceiveCount"]["Default"])
    sqs, dynamodb = clients(server)
    name = f"ragcode-{uuid.uuid4().hex[:10]}"
    dead = sqs.create_queue(QueueName=f"{name}-jobs-dlq.fifo", Attributes={
        "FifoQueue": str(dlq["FifoQueue"]).lower(),
        "ContentBasedDeduplication": str(dlq["ContentBasedDeduplication"]).lower(),
        "MessageRetentionPeriod": str(dlq["MessageRetentionPeriod"])})["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"{name}-jobs.fifo", Attributes={
        "FifoQueue": str(queue["FifoQueue"]).lower(),
        "ContentBasedDeduplication": str(queue["ContentBasedDeduplication"]).lower(),
        "VisibilityTimeout": str(visibility or queue["VisibilityTimeout"]),
        "MessageRetentionPeriod": str(queue["MessageRetentionPeriod"]),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": receives})})["QueueUrl"]
    dynamodb.create_table(TableName=f"{name}-table", BillingMode=table["BillingMode"],
                          AttributeDefinitions=table["AttributeDefinitions"], KeySchema=table["KeySchema"])
    ttl = table["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(TableName=f"{name}-table", TimeToLiveSpecification={
        "AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]})
    return Stack(url, dead, f"{name}-table", receives)
