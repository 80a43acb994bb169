"""The AWS stack (deploy/aws/ragcode.yaml): what the code relies on, least-privilege IAM, and alarms.

Each check returns the problems it finds; the template must have none, and every check is shown to find
the defect it guards against in a deliberately broken copy of the template.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "aws" / "ragcode.yaml"

Template = dict[str, Any]
Check = Callable[[Template], list[str]]

NO_VALUE = {"Ref": "AWS::NoValue"}
# Actions IAM cannot scope to a resource.
UNSCOPABLE_ACTIONS = {"ecr:GetAuthorizationToken"}
HANDLER = "bot.webhooks.aws_lambda.handler"
WORKER_COMMAND = ["ragcode", "worker", "--host", "0.0.0.0", "--port", "8001"]
REQUIRED_ENV = {
    "RAGCODE_QUEUE": "sqs",
    "RAGCODE_STORE": "opensearch",
    "RAGCODE_OPENSEARCH_AWS_SIGV4": "1",
    "RAGCODE_LLM": "bedrock",
    "RAGCODE_EMBEDDER": "bedrock",
    "RAGCODE_SQS_QUEUE_URL": None,
    "RAGCODE_DYNAMODB_TABLE": None,
    "OPENSEARCH_URL": None,
    "RAGCODE_OPENSEARCH_AWS_REGION": None,
    "RAGCODE_BEDROCK_REGIONS": None,
    "RAGCODE_BEDROCK_MODEL": None,
    "RAGCODE_BEDROCK_EMBED_MODEL": None,
    "GITHUB_APP_ID": None,
}
SECRET_ENV = ("GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET")


def load() -> Template:
    """The template as plain JSON-like data (intrinsics as {"Ref": ...}, {"Fn::Sub": ...}, ...)."""
    data: Template = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return data


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type, by logical id."""
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def props(template: Template, name: str) -> dict[str, Any]:
    """Properties of one resource."""
    found: dict[str, Any] = template["Resources"].get(name, {}).get("Properties", {})
    return found


def branches(node: Any) -> Iterator[Any]:
    """Every value a node can take: both sides of Fn::If, lists flattened, AWS::NoValue dropped."""
    if isinstance(node, list):
        for item in node:
            yield from branches(item)
    elif isinstance(node, dict) and "Fn::If" in node:
        yield from branches(node["Fn::If"][1])
        yield from branches(node["Fn::If"][2])
    elif node != NO_VALUE:
        yield node


def sub_text(node: Any) -> str | None:
    """The text of a string or of a Fn::Sub (None for other intrinsics)."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Sub" in node:
        body = node["Fn::Sub"]
        return str(body[0] if isinstance(body, list) else body)
    return None


def statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the stack: role policies, standalone policies and the domain's policy."""
    documents: list[tuple[str, Any]] = []
    for name, res in template["Resources"].items():
        properties = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            documents += [(name, policy["PolicyDocument"]) for policy in properties.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append((name, properties["PolicyDocument"]))
        elif res["Type"] == "AWS::OpenSearchService::Domain" and "AccessPolicies" in properties:
            documents.append((name, properties["AccessPolicies"]))
    for name, document in documents:
        for statement in branches(document["Statement"]):
            yield name, statement


def as_list(node: Any) -> list[Any]:
    """Actions or resources as a list of leaves."""
    return list(branches(node))


def env_of_receiver(template: Template) -> dict[str, Any]:
    """Environment of the Lambda function(s)."""
    env: dict[str, Any] = {}
    for name in resources(template, "AWS::Lambda::Function"):
        env.update(props(template, name).get("Environment", {}).get("Variables", {}))
    return env


def worker_containers(template: Template) -> list[dict[str, Any]]:
    """Container definitions of every ECS task definition."""
    return [
        c
        for name in resources(template, "AWS::ECS::TaskDefinition")
        for c in props(template, name).get("ContainerDefinitions", [])
    ]


def job_queue(template: Template) -> tuple[str, dict[str, Any]] | None:
    """The queue with a redrive policy (the one jobs go to)."""
    for name in resources(template, "AWS::SQS::Queue"):
        if "RedrivePolicy" in props(template, name):
            return name, props(template, name)
    return None


# ------------------------------------------------------------------------------------------- checks


def queue_problems(template: Template) -> list[str]:
    """FIFO job queue without content-based deduplication, redriving to a FIFO dead-letter queue."""
    found = job_queue(template)
    if found is None:
        return ["no SQS queue with a RedrivePolicy"]
    name, queue = found
    problems = []
    if queue.get("FifoQueue") is not True:
        problems.append(f"{name}: not a FIFO queue")
    if queue.get("ContentBasedDeduplication") is not False:
        problems.append(f"{name}: ContentBasedDeduplication must be explicitly off (the code sets ids)")
    if queue.get("MessageRetentionPeriod") != 4 * 86400:
        problems.append(f"{name}: retention is not 4 days")
    if queue.get("VisibilityTimeout", 30) < 300:
        problems.append(f"{name}: visibility timeout below 5 minutes")
    if queue.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in queue:
        problems.append(f"{name}: no server-side encryption")
    redrive = queue["RedrivePolicy"]
    target = redrive.get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
    dlq = props(template, target) if target else {}
    if not dlq:
        problems.append(f"{name}: redrive target is not a queue of this stack")
    elif dlq.get("FifoQueue") is not True:
        problems.append(f"{name}: dead-letter queue {target} is not FIFO")
    elif dlq.get("MessageRetentionPeriod") != 14 * 86400:
        problems.append(f"{name}: dead-letter queue {target} does not keep messages 14 days")
    receives = redrive.get("maxReceiveCount")
    parameter = template["Parameters"].get(receives.get("Ref", "")) if isinstance(receives, dict) else None
    if parameter is None or parameter.get("Default") != 5:
        problems.append(f"{name}: maxReceiveCount is not a parameter defaulting to 5")
    return problems


def table_problems(template: Template) -> list[str]:
    """One on-demand table keyed pk/sk (strings), TTL on expires_at, point-in-time recovery, no indexes."""
    tables = resources(template, "AWS::DynamoDB::Table")
    if len(tables) != 1:
        return [f"expected one DynamoDB table, found {len(tables)}"]
    name = next(iter(tables))
    table = props(template, name)
    problems = []
    if table.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append(f"{name}: billing is not PAY_PER_REQUEST")
    keys = [(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])]
    if keys != [("pk", "HASH"), ("sk", "RANGE")]:
        problems.append(f"{name}: key schema is {keys}, not pk (HASH) + sk (RANGE)")
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    if attributes != {"pk": "S", "sk": "S"}:
        problems.append(f"{name}: attribute definitions are {attributes}, not pk and sk strings")
    ttl = table.get("TimeToLiveSpecification", {})
    if ttl.get("AttributeName") != "expires_at" or ttl.get("Enabled") is not True:
        problems.append(f"{name}: TTL is not enabled on expires_at")
    if table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
        problems.append(f"{name}: point-in-time recovery is off")
    if table.get("SSESpecification", {}).get("SSEEnabled") is not True:
        problems.append(f"{name}: server-side encryption with KMS is off")
    for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if table.get(index):
            problems.append(f"{name}: has {index}")
    return problems


def iam_problems(template: Template) -> list[str]:
    """No wildcard actions; no wildcard resources where a resource can be named; no public principal."""
    problems = []
    for owner, statement in statements(template):
        sid = f"{owner}/{statement.get('Sid', '?')}"
        actions = as_list(statement.get("Action", []))
        for action in actions:
            if not isinstance(action, str) or "*" in action:
                problems.append(f"{sid}: wildcard or computed action {action!r}")
        principal = statement.get("Principal")
        if principal is not None and "*" in json.dumps(principal):
            problems.append(f"{sid}: open principal {principal!r}")
        for resource in as_list(statement.get("Resource", [])):
            text = sub_text(resource)
            if text is None:
                continue  # Ref / GetAtt: a resource of this stack or a named parameter
            if text == "*":
                if not set(actions) <= UNSCOPABLE_ACTIONS:
                    problems.append(f"{sid}: Resource '*' for {actions}")
                continue
            # ${AWS::Partition} and friends contain colons; keep them out of the ARN's fields.
            parts = re.sub(r"\$\{([^}]*)\}", lambda m: "${" + m[1].replace(":", ".") + "}", text).split(
                ":", 5
            )
            named = (parts[5] if len(parts) == 6 else text).removesuffix("/*")
            # What is left must name something: type/name (domain/${Name}) or a resource's ARN (${X.Arn}).
            if "*" in named or ("/" not in named and "${" not in named):
                problems.append(f"{sid}: wildcard in the resource name of {text}")
            if len(parts) == 6 and parts[2] != "bedrock" and "*" in parts[3] + parts[4]:
                problems.append(f"{sid}: wildcard region or account in {text}")
    return problems


def bedrock_problems(template: Template) -> list[str]:
    """InvokeModel only, on the configured models and profile, in the configured regions."""
    problems = []
    covered: set[str] = set()
    found = [
        (owner, s)
        for owner, s in statements(template)
        if any(str(a).startswith("bedrock:") for a in as_list(s.get("Action", [])))
    ]
    if not found:
        return ["no Bedrock permission at all"]
    for owner, statement in found:
        sid = f"{owner}/{statement.get('Sid', '?')}"
        if as_list(statement["Action"]) != ["bedrock:InvokeModel"]:
            problems.append(f"{sid}: actions {statement['Action']!r}, not exactly bedrock:InvokeModel")
        condition = statement.get("Condition", {})
        regions = condition.get("StringEquals", {}).get("aws:RequestedRegion")
        via_profile = sub_text(condition.get("StringLike", {}).get("bedrock:InferenceProfileArn")) or ""
        for resource in as_list(statement.get("Resource", [])):
            text = sub_text(resource) or ""
            model = text.rpartition("/")[2]
            if model not in ("${BedrockModel}", "${BedrockEmbedModel}", "${BedrockFoundationModel}"):
                problems.append(f"{sid}: resource {text!r} is not one of the model parameters")
                continue
            covered.add(model)
            if model == "${BedrockFoundationModel}":
                if not via_profile.endswith("inference-profile/${BedrockModel}"):
                    problems.append(f"{sid}: the model behind the profile is allowed outside the profile")
            elif regions != {"Ref": "BedrockRegions"}:
                problems.append(f"{sid}: {text!r} is not limited to BedrockRegions")
    for model in ("${BedrockModel}", "${BedrockEmbedModel}"):
        if model not in covered:
            problems.append(f"no permission for {model}")
    return problems


def alarm_problems(template: Template) -> list[str]:
    """Alarms on a non-empty dead-letter queue and on the age of the oldest job."""
    found = job_queue(template)
    if found is None:
        return ["no job queue to watch"]
    queue, dlq = found[0], found[1]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]

    def watched(name: str, metric: str) -> list[dict[str, Any]]:
        return [
            p
            for alarm in resources(template, "AWS::CloudWatch::Alarm")
            if (p := props(template, alarm)).get("MetricName") == metric
            and {"Name": "QueueName", "Value": {"Fn::GetAtt": [name, "QueueName"]}} in p.get("Dimensions", [])
        ]

    problems = []
    if not any(
        a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold"
        for a in watched(dlq, "ApproximateNumberOfMessagesVisible")
    ):
        problems.append(f"no alarm on messages in the dead-letter queue {dlq}")
    if not any(
        a["Threshold"] == {"Ref": "OldestMessageAlarmSeconds"}
        for a in watched(queue, "ApproximateAgeOfOldestMessage")
    ):
        problems.append(f"no alarm on the oldest message's age in {queue}")
    return problems


def worker_problems(template: Template) -> list[str]:
    """Fargate workers run `ragcode worker`, get the environment and secrets, and scale on queue depth."""
    containers = worker_containers(template)
    if not containers:
        return ["no ECS task definition"]
    problems = []
    for container in containers:
        name = container.get("Name", "?")
        if container.get("Command") != WORKER_COMMAND:
            problems.append(f"{name}: command {container.get('Command')!r}, not {WORKER_COMMAND}")
        if container.get("StopTimeout", 30) < 120:
            problems.append(f"{name}: stopTimeout below 120 s leaves no time to finish or release a job")
        if "8001/healthz" not in " ".join(container.get("HealthCheck", {}).get("Command", [])):
            problems.append(f"{name}: no health check on :8001/healthz")
        env = {e["Name"]: e["Value"] for e in branches(container.get("Environment", []))}
        problems += env_problems(template, name, env)
        secrets = {s["Name"] for s in branches(container.get("Secrets", []))}
        for secret in SECRET_ENV:
            if secret not in secrets or secret in env:
                problems.append(f"{name}: {secret} does not come from Secrets Manager")
    queue = job_queue(template)
    depth = {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue[0] if queue else "", "QueueName"]}}
    scaling = [
        p
        for alarm in resources(template, "AWS::CloudWatch::Alarm")
        if (p := props(template, alarm)).get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and depth in p.get("Dimensions", [])
        and p.get("AlarmActions")
    ]
    if not scaling or not resources(template, "AWS::ApplicationAutoScaling::ScalableTarget"):
        problems.append("workers do not scale on the job queue's visible messages")
    return problems


def receiver_problems(template: Template) -> list[str]:
    """The Lambda receiver: image, handler, environment, secrets, public URL and its output."""
    functions = resources(template, "AWS::Lambda::Function")
    if len(functions) != 1:
        return [f"expected one Lambda function, found {len(functions)}"]
    name = next(iter(functions))
    function = props(template, name)
    problems = []
    if function.get("PackageType") != "Image":
        problems.append(f"{name}: not a container image function")
    if function.get("ImageConfig", {}).get("Command") != [HANDLER]:
        problems.append(f"{name}: handler is not {HANDLER}")
    env = env_of_receiver(template)
    problems += env_problems(template, name, env)
    for secret in SECRET_ENV:
        if "{{resolve:secretsmanager:" not in (sub_text(env.get(secret)) or ""):
            problems.append(f"{name}: {secret} is not a Secrets Manager dynamic reference")
    urls = [props(template, u) for u in resources(template, "AWS::Lambda::Url")]
    if not any(u.get("AuthType") == "NONE" for u in urls):
        problems.append(f"{name}: no public function URL (GitHub cannot sign AWS requests)")
    webhook = sub_text(template.get("Outputs", {}).get("WebhookUrl", {}).get("Value")) or ""
    if not webhook.endswith("FunctionUrl}webhook"):
        problems.append("the WebhookUrl output is not the function URL's /webhook")
    return problems


def env_problems(template: Template, owner: str, env: dict[str, Any]) -> list[str]:
    """The variables the queue, store, models and GitHub client read."""
    problems = []
    for key, value in REQUIRED_ENV.items():
        if key not in env:
            problems.append(f"{owner}: {key} is not set")
        elif value is not None and env[key] != value:
            problems.append(f"{owner}: {key} is {env[key]!r}, not {value!r}")
    queue = job_queue(template)
    if queue is None or env.get("RAGCODE_SQS_QUEUE_URL") != {"Ref": queue[0]}:
        problems.append(f"{owner}: RAGCODE_SQS_QUEUE_URL is not the job queue's URL")
    tables = list(resources(template, "AWS::DynamoDB::Table"))
    if env.get("RAGCODE_DYNAMODB_TABLE") not in [{"Ref": t} for t in tables]:
        problems.append(f"{owner}: RAGCODE_DYNAMODB_TABLE is not the stack's table")
    if not (sub_text(env.get("OPENSEARCH_URL")) or "").startswith("https://"):
        problems.append(f"{owner}: OPENSEARCH_URL is not https")
    return problems


def search_problems(template: Template) -> list[str]:
    """An OpenSearch 2.x domain: encrypted, HTTPS with TLS 1.2+, only the worker role admitted."""
    domains = resources(template, "AWS::OpenSearchService::Domain")
    if len(domains) != 1:
        return [f"expected one OpenSearch domain, found {len(domains)}"]
    name = next(iter(domains))
    domain = props(template, name)
    problems = []
    version = domain.get("EngineVersion")
    default = (
        template["Parameters"].get(version.get("Ref", ""), {}).get("Default")
        if isinstance(version, dict)
        else version
    )
    if not str(default).startswith("OpenSearch_2."):
        problems.append(f"{name}: engine {default!r} is not OpenSearch 2.x")
    if domain.get("EncryptionAtRestOptions", {}).get("Enabled") is not True:
        problems.append(f"{name}: not encrypted at rest")
    if domain.get("NodeToNodeEncryptionOptions", {}).get("Enabled") is not True:
        problems.append(f"{name}: no node-to-node encryption")
    endpoint = domain.get("DomainEndpointOptions", {})
    if endpoint.get("EnforceHTTPS") is not True or "TLS-1-2" not in endpoint.get("TLSSecurityPolicy", ""):
        problems.append(f"{name}: HTTPS with TLS 1.2 or later is not enforced")
    principals = [s.get("Principal") for s in branches(domain.get("AccessPolicies", {}).get("Statement", []))]
    if principals != [{"AWS": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}}]:
        problems.append(f"{name}: access policy admits {principals!r}, not the worker role alone")
    return problems


def output_problems(template: Template) -> list[str]:
    """What an operator needs after deploying."""
    outputs = template.get("Outputs", {})
    return [
        f"no {key} output"
        for key in ("WebhookUrl", "QueueUrl", "TableName", "OpenSearchEndpoint")
        if key not in outputs
    ]


CHECKS: list[Check] = [
    queue_problems,
    table_problems,
    iam_problems,
    bedrock_problems,
    alarm_problems,
    worker_problems,
    receiver_problems,
    search_problems,
    output_problems,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_template_has_no_problems(check: Check) -> None:
    assert check(load()) == []


def test_secrets_are_read_by_ecs_not_by_the_application() -> None:
    template = load()
    readers = {
        owner
        for owner, s in statements(template)
        if any(str(a).startswith("secretsmanager:") for a in as_list(s.get("Action", [])))
    }
    assert readers == {"WorkerExecutionRole"}
    secret_statement = next(
        s
        for owner, s in statements(template)
        if owner == "WorkerExecutionRole" and as_list(s["Action"]) == ["secretsmanager:GetSecretValue"]
    )
    assert as_list(secret_statement["Resource"]) == [
        {"Ref": "GitHubPrivateKeySecretArn"},
        {"Ref": "GitHubWebhookSecretArn"},
        {"Ref": "AdminTokenSecretArn"},
    ]


# ------------------------------------------------------------------------- the checks can fail


def _set(path: list[Any], value: Any) -> Callable[[Template], None]:
    def mutate(template: Template) -> None:
        node: Any = template
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()
R = "Resources"
WORKER_POLICY = [R, "WorkerTaskPolicy", "Properties", "PolicyDocument", "Statement"]
CONTAINER = [R, "WorkerTaskDefinition", "Properties", "ContainerDefinitions", 0]

BROKEN: list[tuple[str, Callable[[Template], None], Check]] = [
    (
        "content-based deduplication",
        _set([R, "JobQueue", "Properties", "ContentBasedDeduplication"], True),
        queue_problems,
    ),
    ("standard queue", _set([R, "JobQueue", "Properties", "FifoQueue"], _DELETE), queue_problems),
    (
        "standard dead-letter queue",
        _set([R, "DeadLetterQueue", "Properties", "FifoQueue"], _DELETE),
        queue_problems,
    ),
    ("no redrive", _set([R, "JobQueue", "Properties", "RedrivePolicy"], _DELETE), queue_problems),
    (
        "fixed receive count",
        _set([R, "JobQueue", "Properties", "RedrivePolicy", "maxReceiveCount"], 3),
        queue_problems,
    ),
    (
        "sort key renamed",
        _set([R, "CoordinationTable", "Properties", "KeySchema", 1, "AttributeName"], "sort"),
        table_problems,
    ),
    (
        "TTL attribute renamed",
        _set([R, "CoordinationTable", "Properties", "TimeToLiveSpecification", "AttributeName"], "ttl"),
        table_problems,
    ),
    (
        "provisioned billing",
        _set([R, "CoordinationTable", "Properties", "BillingMode"], "PROVISIONED"),
        table_problems,
    ),
    (
        "secondary index",
        _set([R, "CoordinationTable", "Properties", "GlobalSecondaryIndexes"], [{"IndexName": "by_sk"}]),
        table_problems,
    ),
    ("sqs:* action", _set([*WORKER_POLICY, 0, "Action"], "sqs:*"), iam_problems),
    ("table access on *", _set([*WORKER_POLICY, 2, "Resource"], "*"), iam_problems),
    (
        "any table in the account",
        _set(
            [*WORKER_POLICY, 2, "Resource"],
            {"Fn::Sub": "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"},
        ),
        iam_problems,
    ),
    (
        "public domain policy",
        _set([R, "SearchDomain", "Properties", "AccessPolicies", "Statement", 0, "Principal"], {"AWS": "*"}),
        iam_problems,
    ),
    (
        "any Bedrock model",
        _set(
            [*WORKER_POLICY, 4, "Resource", 0],
            {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/*"},
        ),
        bedrock_problems,
    ),
    ("Bedrock in any region", _set([*WORKER_POLICY, 4, "Condition"], _DELETE), bedrock_problems),
    ("bedrock:*", _set([*WORKER_POLICY, 4, "Action"], "bedrock:*"), bedrock_problems),
    ("no dead-letter alarm", _set([R, "DeadLetterAlarm"], _DELETE), alarm_problems),
    ("no oldest-message alarm", _set([R, "OldestJobAlarm"], _DELETE), alarm_problems),
    ("workers run serve", _set([*CONTAINER, "Command"], ["ragcode", "serve"]), worker_problems),
    ("short stop timeout", _set([*CONTAINER, "StopTimeout"], 30), worker_problems),
    ("key as plain variable", _set([*CONTAINER, "Secrets"], []), worker_problems),
    ("no queue variable", _set([*CONTAINER, "Environment", 2], {"Name": "X", "Value": "y"}), worker_problems),
    ("no scaling", _set([R, "WorkerScalableTarget"], _DELETE), worker_problems),
    (
        "other handler",
        _set([R, "Receiver", "Properties", "ImageConfig", "Command"], ["bot.app.handler"]),
        receiver_problems,
    ),
    (
        "webhook secret as parameter",
        _set(
            [R, "Receiver", "Properties", "Environment", "Variables", "GITHUB_WEBHOOK_SECRET"],
            {"Ref": "GitHubAppId"},
        ),
        receiver_problems,
    ),
    (
        "local store",
        _set([R, "Receiver", "Properties", "Environment", "Variables", "RAGCODE_STORE"], "local"),
        receiver_problems,
    ),
    (
        "plain http",
        _set([R, "SearchDomain", "Properties", "DomainEndpointOptions", "EnforceHTTPS"], False),
        search_problems,
    ),
    ("no webhook output", _set(["Outputs", "WebhookUrl"], _DELETE), output_problems),
]


@pytest.mark.parametrize(("mutate", "check"), [(m, c) for _, m, c in BROKEN], ids=[d for d, _, _ in BROKEN])
def test_checks_find_the_defect(mutate: Callable[[Template], None], check: Check) -> None:
    template = copy.deepcopy(load())
    assert check(template) == []
    mutate(template)
    assert check(template) != []
