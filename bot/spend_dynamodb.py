"""The operations ledger in the DynamoDB coordination table (``RAGCODE_QUEUE=sqs``), shared by every receiver
and worker. Counters are updated with atomic ``ADD``; every item expires by the table's TTL (``expires_at``).

Items (partition key ``pk``, sort key ``sk``, both strings):

- ``spend#<YYYY-MM>`` / ``installation#<id>``: ``usd`` spent by the installation that month;
- ``day`` / ``<YYYY-MM-DD>``: ``runs``, ``failed_runs``, ``summaries`` and ``cost_usd`` of the day;
- ``usage`` / ``<YYYY-MM-DD>#<region>``: model ``calls``, tokens, ``errors``, ``throttles``, ``seconds`` and
  ``cost_usd`` of the region that day;
- ``run`` / ``<started, ms, 14 digits>#<run id>``: a finished run (its summary as JSON in ``data``);
- ``running`` / ``<repo id>#<branch>``: the run in progress on a branch (removed when it ends);
- ``feedback`` / ``total#<reaction>`` and ``repo#<repo id>#<reaction>``: reactions on replies.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.config import ConfigError, Settings
from bot.llm.usage import Figures
from bot.spend import (
    DAILY_DAYS,
    DAY,
    RUN_DAYS,
    RUNNING_SECONDS,
    SPEND_DAYS,
    DayFigures,
    RunSummary,
    check_reaction,
    day_of,
    last_days,
    month_of,
    usage_rows,
)

MAX_PAGES = 20  # pages of one query (1 MB each at most)
_REGION = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")  # the queue's region, as bot/queue/sqs.py
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def _number(value: float) -> Decimal | int:
    """A number DynamoDB takes (it refuses Python floats)."""
    if isinstance(value, int):
        return value
    return Decimal(repr(float(value))) if math.isfinite(value) else 0


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serialize(_number(value) if isinstance(value, float) else value)
            for key, value in values.items() if value is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserialize(value) for key, value in item.items()}


class DynamoLedger:
    """``Ledger`` in ``RAGCODE_DYNAMODB_TABLE``; safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.table = settings.dynamodb_table
        match = _REGION.match(settings.sqs_queue_url)
        try:
            self.dynamodb = boto3.session.Session().client(
                "dynamodb", region_name=match[1] if match else None,
                config=Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard"}))
        except Exception as error:  # botocore.exceptions.NoRegionError and friends
            raise ConfigError(f"AWS_REGION: cannot make a DynamoDB client ({error})") from None

    def _add(self, pk: str, sk: str, counters: dict[str, float], expires: float) -> None:
        """``ADD`` the counters to one item and move its expiry."""
        names = {f"#c{n}": name for n, name in enumerate(counters)}
        values: dict[str, Any] = {f":c{n}": value for n, value in enumerate(counters.values())}
        adds = ", ".join(f"#c{n} :c{n}" for n in range(len(counters)))
        self.dynamodb.update_item(
            TableName=self.table, Key=_item({"pk": pk, "sk": sk}), UpdateExpression=f"ADD {adds} SET expires_at = :e",
            ExpressionAttributeNames=names, ExpressionAttributeValues=_item({**values, ":e": int(expires)}))

    def _query(self, pk: str, *, start: str | None = None, prefix: str | None = None, newest_first: bool = False,
               limit: int | None = None) -> list[dict[str, Any]]:
        condition, values = "pk = :pk", {":pk": pk}
        if start is not None:
            condition, values[":start"] = condition + " AND sk >= :start", start
        if prefix is not None:
            condition, values[":prefix"] = condition + " AND begins_with(sk, :prefix)", prefix
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": condition,
                                   "ExpressionAttributeValues": _item(values), "ScanIndexForward": not newest_first}
        if limit is not None:
            request["Limit"] = limit
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            answer = self.dynamodb.query(**request)
            items += [_plain(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer or (limit is not None and len(items) >= limit):
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return items[:limit] if limit is not None else items

    def record_spend(self, installation: int, usd: float) -> None:
        """``ADD`` to the installation's item of the month and to today's (nothing for zero, negative or
        non-finite amounts)."""
        if not math.isfinite(usd) or usd <= 0:
            return
        now = time.time()
        self._add(f"spend#{month_of(now)}", f"installation#{int(installation)}", {"usd": usd}, now + SPEND_DAYS * DAY)
        self._add("day", day_of(now), {"cost_usd": usd}, now + DAILY_DAYS * DAY)

    def month_spend(self, installation: int) -> float:
        """This month's spending of the installation (a consistent read)."""
        answer = self.dynamodb.get_item(TableName=self.table, ConsistentRead=True, Key=_item(
            {"pk": f"spend#{month_of()}", "sk": f"installation#{int(installation)}"}))
        return float(_plain(answer["Item"]).get("usd", 0)) if "Item" in answer else 0.0

    def month_spending(self) -> dict[int, float]:
        """This month's spending of every installation that spent something."""
        items = self._query(f"spend#{month_of()}", prefix="installation#")
        return {int(item["sk"].split("#", 1)[1]): float(item.get("usd", 0)) for item in items}

    def record_usage(self, rows: Sequence[dict[str, Any]]) -> None:
        """``ADD`` the rows to today's item of each region."""
        now = time.time()
        for region, figures in usage_rows(rows).items():
            counters = {key: value for key, value in vars(figures).items() if value}
            if counters:
                self._add("usage", f"{day_of(now)}#{region}", counters, now + DAILY_DAYS * DAY)

    def region_usage(self, days: int) -> dict[str, Figures]:
        """Figures per region summed over the last ``days`` days."""
        regions: dict[str, Figures] = {}
        for item in self._query("usage", start=last_days(days)[0]):
            figures = regions.setdefault(str(item["sk"]).split("#", 1)[1], Figures())
            for key, value in vars(figures).items():
                added = item.get(key, 0)
                setattr(figures, key, value + (float(added) if isinstance(value, float) else int(added)))
        return dict(sorted(regions.items()))

    def record_run(self, run: RunSummary) -> None:
        """A running run: the branch's marker. A finished one: its item (a conditional put, so a second record of
        it counts nothing), then today's counters, then the marker goes if it is still this run's."""
        data = json.dumps(run.to_json(), ensure_ascii=False)
        marker = {"pk": "running", "sk": f"{run.repo_id}#{run.branch}"}
        now = time.time()
        if run.outcome == "running":
            self.dynamodb.put_item(TableName=self.table, Item=_item(
                {**marker, "id": run.id, "data": data, "started_at": run.started_at,
                 "expires_at": int(run.started_at + RUNNING_SECONDS)}))
            return
        try:
            self.dynamodb.put_item(
                TableName=self.table, ConditionExpression="attribute_not_exists(pk)", Item=_item(
                    {"pk": "run", "sk": f"{int(run.started_at * 1000):014d}#{run.id}", "data": data,
                     "expires_at": int(now + RUN_DAYS * DAY)}))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        else:
            self._add("day", day_of(now), {"runs": 1, "failed_runs": int(run.outcome != "success"),
                                           "summaries": run.summaries_generated}, now + DAILY_DAYS * DAY)
        try:
            self.dynamodb.delete_item(TableName=self.table, Key=_item(marker), ConditionExpression="id = :id",
                                      ExpressionAttributeValues=_item({":id": run.id}))
        except ClientError as error:  # a newer run of the branch holds the marker now
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The newest finished runs (one query, newest first)."""
        if limit <= 0:
            return []
        return [RunSummary.from_json(json.loads(item["data"]))
                for item in self._query("run", newest_first=True, limit=limit)]

    def running_runs(self) -> list[RunSummary]:
        """Markers of runs in progress that have not expired (TTL deletes lazily, so they are filtered here)."""
        now = time.time()
        runs = [RunSummary.from_json(json.loads(item["data"])) for item in self._query("running")
                if int(item.get("expires_at", 0)) > now]
        return sorted(runs, key=lambda run: run.started_at, reverse=True)

    def daily(self, days: int) -> list[DayFigures]:
        """Each of the last ``days`` days, oldest first."""
        wanted = last_days(days)
        found = {}
        for item in self._query("day", start=wanted[0]):
            found[str(item["sk"])] = DayFigures(str(item["sk"]), int(item.get("runs", 0)),
                                                int(item.get("failed_runs", 0)), int(item.get("summaries", 0)),
                                                float(item.get("cost_usd", 0)))
        return [found.get(day, DayFigures(day)) for day in wanted]

    def record_feedback(self, repo_id: int, reaction: str, count: int) -> None:
        """``ADD`` to the repository's counter and the total, both or neither (one transaction)."""
        check_reaction(reaction)
        updates = []
        for sk in (f"total#{reaction}", f"repo#{int(repo_id)}#{reaction}"):
            updates.append({"Update": {"TableName": self.table, "Key": _item({"pk": "feedback", "sk": sk}),
                                       "UpdateExpression": "ADD #n :n", "ExpressionAttributeNames": {"#n": "count"},
                                       "ExpressionAttributeValues": _item({":n": int(count)})}})
        self.dynamodb.transact_write_items(TransactItems=updates)

    def feedback_totals(self) -> dict[str, int]:
        """Reactions by content over every repository."""
        return {str(item["sk"]).removeprefix("total#"): int(item.get("count", 0))
                for item in self._query("feedback", prefix="total#")}

    def close(self) -> None:
        """Close the HTTP connections."""
        self.dynamodb.close()
