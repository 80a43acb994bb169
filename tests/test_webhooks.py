"""The webhook service in-process (Starlette's test client) against the stand-in GitHub API on loopback."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import git
import pytest
from github import GithubException
from starlette.testclient import TestClient

from bot.config import ConfigError, Settings
from bot.github.client import GitHubApp, check_app_settings
from bot.github.mirror import MirrorError, Mirrors, auth_env, branch_head
from bot.indexer.pipeline import IndexReport
from bot.queue import JobSpec
from bot.webhooks import checks, installation
from bot.webhooks.app import create_app, router
from bot.webhooks.router import Event
from bot.webhooks.signature import sign, verify
from tests.github_standin import (
    APP_ID,
    WEBHOOKS,
    GitHubStandIn,
    Repo,
    comment_payload,
    example,
    generate_private_key,
    installation_payload,
    push_payload,
    repository_payload,
)
from tests.test_openai_provider import API_KEY, OpenAIStandin

SECRET = "It's a Secret to Everybody"
INSTALLATION = 31


def make_settings(home: Path, github: GitHubStandIn, keys, **overrides) -> Settings:
    values = dict(home=home, github_api_url=github.url, github_app_id=str(APP_ID), github_private_key=keys[0],
                  github_webhook_secret=SECRET, allow_file_urls=True, job_backoff_seconds=0.2)
    return Settings(**(values | overrides))


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> git.Repo:
    repo = git.Repo.init(path, initial_branch=branch)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    repo.index.add(list(files))
    repo.index.commit("initial")
    return repo


def post(client: TestClient, event: str, payload=None, *, body: bytes | None = None, delivery: str | None = None,
         signature: str | None = "sign"):
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Hub-Signature-256"] = sign(SECRET, raw)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhook", content=raw, headers=headers)


def wait_idle(client: TestClient, timeout: float = 30) -> None:
    """Until no job is queued or running."""
    queue = client.app.state.queue
    deadline = time.time() + timeout
    while time.time() < deadline:
        counts = queue.counts()
        if counts["queued"] == 0 and counts["running"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"jobs still pending: {queue.counts()}")


@pytest.fixture
def paused(tmp_path, github, keys):
    """The service with its workers paused: only the HTTP side runs."""
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys, pause_workers=True))) as client:
        yield client


@pytest.fixture
def source(tmp_path, github):
    repo = make_repo(tmp_path / "src", {"app.py": "def hello():\n    return 'hi'\n"})
    return repo, github.add_repo("acme/widgets", f"file://{tmp_path / 'src'}", octocat="write", reader="read")


# signatures and bad input


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"zen": "Keep it logically awesome."}'
    assert verify(SECRET, body, sign(SECRET, body))
    assert not verify(SECRET, body + b" ", sign(SECRET, body))
    assert not verify(SECRET, body, None) and not verify("", body, sign("", body))
    assert not verify(SECRET, body, "sha256=" + "0" * 64) and not verify(SECRET, body, "sha1=abc")


@pytest.mark.parametrize("signature", [None, "", "sha256=deadbeef", sign("another secret", b"{}")])
def test_bad_or_missing_signatures_get_401_and_queue_nothing(paused, source, signature):
    payload = push_payload(source[1], INSTALLATION, "main", "0" * 40, source[0].head.commit.hexsha)
    response = post(paused, "push", payload, delivery="d-1", signature=signature)
    assert response.status_code == 401
    assert paused.app.state.queue.counts() == {"queued": 0, "running": 0, "parked": 0}
    # the delivery was not recorded either: the same id, signed, is new work
    assert post(paused, "push", payload, delivery="d-1").status_code == 202


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"ref": "refs/heads/main"}', b'{"ref": 5}']
)
def test_malformed_bodies_get_400(paused, body):
    assert post(paused, "push", body=body).status_code == 400


DEEP = 100_000


def _deep_list() -> str:
    return "[" * DEEP + "]" * DEEP


def _deep_object() -> str:
    return '{"a":' * DEEP + "1" + "}" * DEEP


def _with(payload: dict, path: tuple[str, ...], value: object) -> dict:
    """A copy of ``payload`` with the field at ``path`` set to ``value``."""
    copy = json.loads(json.dumps(payload))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def _hostile_bodies(repo) -> dict[str, tuple[str, bytes]]:
    """Signed bodies that cannot be parsed or routed, by name: (event, body)."""
    push = push_payload(repo, INSTALLATION, "main", "0" * 40, "a" * 40)
    comment = comment_payload(repo, INSTALLATION, "/ragcode 재고를 예약하는 코드")
    installed = installation_payload([repo], INSTALLATION)
    text = json.dumps(push)
    return {
        "nested list 100k deep": ("push", _deep_list().encode()),
        "nested object 100k deep": ("push", _deep_object().encode()),
        "deep value in ref": ("push", text.replace('"refs/heads/main"', _deep_list()).encode()),
        "deep comment body": ("issue_comment", json.dumps(_with(comment, ("comment", "body"), "BODY")).replace(
            '"BODY"', _deep_object()).encode()),
        "number longer than Python parses": ("push", text.replace(
            f'"id": {INSTALLATION}', '"id": 1' + "0" * 5000).encode()),
        "installation.id a string": ("push", json.dumps(_with(push, ("installation", "id"), str(INSTALLATION))).encode()),
        "installation.id a boolean": ("push", json.dumps(_with(push, ("installation", "id"), True)).encode()),
        "installation.id negative": ("push", json.dumps(_with(push, ("installation", "id"), -1)).encode()),
        "installation.id beyond 64 bits": ("push", json.dumps(_with(push, ("installation", "id"), 2**64)).encode()),
        "installation a list": ("push", json.dumps(_with(push, ("installation",), [INSTALLATION])).encode()),
        "repository a string": ("push", json.dumps(_with(push, ("repository",), "acme/widgets")).encode()),
        "issue.number a string": ("issue_comment", json.dumps(_with(comment, ("issue", "number"), "1")).encode()),
        "comment.id a float": ("issue_comment", json.dumps(_with(comment, ("comment", "id"), 4242.5)).encode()),
        "comment a list": ("issue_comment", json.dumps(_with(comment, ("comment",), [])).encode()),
        "repositories of numbers": ("installation", json.dumps(_with(installed, ("repositories",), [1, 2])).encode()),
        "repositories a string": ("installation", json.dumps(_with(installed, ("repositories",), "all")).encode()),
        "lone surrogate in ref": ("push", text.replace('"refs/heads/main"', '"refs/heads/\\ud800"').encode()),
        "lone surrogate in the name": ("push", text.replace('"acme/widgets"', '"acme/\\udc00"').encode()),
        "lone surrogate in the command": ("issue_comment", json.dumps(_with(comment, ("comment", "body"), "BODY")).replace(
            '"BODY"', '"/ragcode \\udfff"').encode()),
        "UTF-16": ("push", text.encode("utf-16")),
        "Latin-1": ("push", json.dumps(push, ensure_ascii=False).replace("main", "ma\u00efn").encode("latin-1")),
        "UTF-8 with a BOM": ("push", b"\xef\xbb\xbf" + text.encode()),
    }


HOSTILE = sorted(_hostile_bodies(Repo("acme/widgets", "file:///nowhere")))


@pytest.mark.parametrize("name", HOSTILE)
def test_signed_bodies_that_cannot_be_parsed_or_routed_get_400_never_5xx(paused, source, name):
    event, body = _hostile_bodies(source[1])[name]
    response = post(paused, event, body=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert paused.app.state.queue.counts() == {"queued": 0, "running": 0, "parked": 0}
    valid = {"push": push_payload(source[1], INSTALLATION, "main", "0" * 40, "a" * 40),
             "issue_comment": comment_payload(source[1], INSTALLATION, "/ragcode 재고를 예약하는 코드"),
             "installation": installation_payload([source[1]], INSTALLATION)}[event]
    assert post(paused, event, valid).status_code == 202, "the unchanged payload is routable"


def test_a_handler_tripping_over_a_payload_gets_400_not_500(paused, source):
    # a handler that reads the payload without checking it (as a future one might) cannot turn a bad
    # delivery into a 5xx: the event name is this test's own, so no real route changes
    @router.register("ragcode_test_careless")
    def careless(event: Event) -> list[JobSpec]:
        return [JobSpec("index", event.data["repository"]["full_name"], {"id": event.data["repository"]["id"] + 1})]

    assert post(paused, "ragcode_test_careless", {"repository": "acme/widgets"}).status_code == 400
    assert post(paused, "ragcode_test_careless", {"repository": {"id": "7"}}).status_code == 400
    assert post(paused, "ragcode_test_careless", {}).status_code == 400
    assert paused.app.state.queue.counts()["queued"] == 0


def test_missing_delivery_or_event_headers_get_400(paused):
    body = json.dumps(example("ping/default")).encode()
    signed = {"X-Hub-Signature-256": sign(SECRET, body)}
    assert paused.post("/webhook", content=body, headers=signed | {"X-GitHub-Event": "ping"}).status_code == 400
    assert paused.post("/webhook", content=body, headers=signed | {"X-GitHub-Delivery": "x"}).status_code == 400


def test_oversized_bodies_get_413_and_unsigned_ones_401_before_they_are_read(tmp_path, github, keys):
    settings = make_settings(tmp_path / "home", github, keys, pause_workers=True, webhook_max_bytes=1024)
    with TestClient(create_app(settings)) as client:
        assert post(client, "push", body=b"x" * 4096).status_code == 413
        assert post(client, "push", body=b"x" * 4096, signature=None).status_code == 401
        assert post(client, "ping", {"zen": "Small is fine.", "hook_id": 1}).status_code == 200


@pytest.mark.parametrize("path", sorted(p.relative_to(WEBHOOKS) for p in WEBHOOKS.glob("*/*.json")
                                        if p.parent.name != "schemas"), ids=str)
def test_every_real_example_payload_is_answered_without_5xx(paused, path):
    payload = json.loads((WEBHOOKS / path).read_text())
    response = post(paused, path.parent.name, payload)
    assert response.status_code in (200, 202, 400), response.text


# routing


def test_ping_and_ignored_events_get_200(paused, source):
    assert post(paused, "ping", example("ping/with-app_id")).json()["zen"]
    labeled = example("pull_request/opened") | {"action": "labeled"}  # opened, synchronize, closed: overlays
    assert post(paused, "pull_request", labeled).status_code == 200
    assert post(paused, "star", {"action": "created"}).status_code == 200
    suspended = example("installation/deleted") | {"action": "suspend"}
    assert post(paused, "installation", suspended).status_code == 200
    tag = push_payload(source[1], INSTALLATION, "main", "0" * 40, "a" * 40, ref="refs/tags/v1.0")
    assert post(paused, "push", tag).status_code == 200
    for action in ("edited", "deleted"):
        payload = comment_payload(source[1], INSTALLATION, "/ragcode help")
        payload["action"] = action
        assert post(paused, "issue_comment", payload).json()["ignored"] is True
    bot = comment_payload(source[1], INSTALLATION, "/ragcode help", login="ragcode[bot]", user_type="Bot")
    assert post(paused, "issue_comment", bot).status_code == 200
    chatter = comment_payload(source[1], INSTALLATION, "Looks good to me")
    assert post(paused, "issue_comment", chatter).status_code == 200
    assert paused.app.state.queue.counts()["queued"] == 0


def test_work_is_queued_with_202_and_a_redelivery_is_not_processed_twice(paused, source):
    payload = push_payload(source[1], INSTALLATION, "main", "0" * 40, source[0].head.commit.hexsha)
    first = post(paused, "push", payload, delivery="abc-1")
    again = post(paused, "push", payload, delivery="abc-1")
    assert first.status_code == 202 and first.json()["delivery"] == "abc-1"
    assert again.status_code == 200 and again.json() == {"delivery": "abc-1", "job": first.json()["job"],
                                                        "duplicate": True}
    assert paused.app.state.queue.counts()["queued"] == 1


def test_installation_queues_a_full_index_per_repository(paused, source, github):
    other = github.add_repo("acme/gadgets", source[1].clone_url)
    response = post(paused, "installation", installation_payload([source[1], other], INSTALLATION))
    assert response.status_code == 202 and len(response.json()["jobs"]) == 2
    added = example("installation_repositories/added")
    added["installation"]["id"] = INSTALLATION
    assert post(paused, "installation_repositories", added).status_code == 202
    assert paused.app.state.queue.full_index_pending(added["repositories_added"][0]["id"])


def test_removing_a_repository_forgets_its_index_and_mirror_once_github_confirms(tmp_path, github, keys, source):
    settings = make_settings(tmp_path / "home", github, keys)
    widgets = source[1]
    removed = example("installation_repositories/removed")
    removed["installation"]["id"] = INSTALLATION
    removed["repositories_removed"][0].update(id=widgets.id, full_name="acme/widgets")
    with TestClient(create_app(settings)) as client:
        post(client, "installation", installation_payload([widgets], INSTALLATION))
        wait_idle(client)
        store = client.app.state.workers.context.runtime.store
        assert [state.repo for state in store.branch_states(widgets.id)] == ["acme/widgets"]
        mirror = settings.home / "mirrors" / f"{widgets.id}.git"
        assert mirror.is_dir()
        # a signed removal replayed while the App can still read the repository forgets nothing
        assert post(client, "installation_repositories", removed).status_code == 202
        wait_idle(client)
        assert store.branch_states(widgets.id) and mirror.is_dir()
        assert github.recorded("GET", r"/installation/repositories")
        github.revoke(widgets, INSTALLATION)
        removed["sender"]["id"] += 1  # a real second removal is another body
        assert post(client, "installation_repositories", removed).status_code == 202
        wait_idle(client)
        assert store.branch_states(widgets.id) == [] and not mirror.exists()
        assert store.cached_summaries(widgets.id, ["x"]) == {}
    specs = installation.router.dispatch(Event("installation", "d-1", example("installation/deleted")))
    assert [(spec.kind, spec.repo, spec.repo_id) for spec in specs] == [("forget", "octocat/Hello-World", 1296269)]


def test_a_replayed_body_under_fresh_delivery_ids_is_queued_once(paused, source):
    payload = comment_payload(source[1], INSTALLATION, "/ragcode search add")
    first = post(paused, "issue_comment", payload)
    replays = [post(paused, "issue_comment", payload) for _ in range(2)]
    assert first.status_code == 202 and all(r.status_code == 200 and r.json()["duplicate"] for r in replays)
    assert paused.app.state.queue.counts()["queued"] == 1


def test_repository_events_follow_renames_and_forget_deleted_repositories(tmp_path, github, keys, source):
    import jsonschema

    schema = json.loads((WEBHOOKS / "schemas" / "schema.json").read_text())
    settings = make_settings(tmp_path / "home", github, keys)
    widgets = source[1]
    with TestClient(create_app(settings)) as client:
        post(client, "installation", installation_payload([widgets], INSTALLATION))
        wait_idle(client)
        store = client.app.state.workers.context.runtime.store
        # renamed: the index stays under the id and takes the new name GitHub reports
        github.repos["acme/gizmos"] = github.repos.pop("acme/widgets")
        widgets.full_name = "acme/gizmos"
        renamed = repository_payload(widgets, INSTALLATION, "renamed", repository={"name": {"from": "widgets"}})
        jsonschema.validate(renamed, {**schema, "$ref": "#/definitions/repository$renamed"})
        assert post(client, "repository", renamed).status_code == 202
        wait_idle(client)
        assert [s.repo for s in store.branch_states(widgets.id)] == ["acme/gizmos"]
        # deleted, and someone re-creates the old name: the new repository has a new id and sees nothing
        github.delete_repo("acme/gizmos")
        deleted = repository_payload(widgets, INSTALLATION, "deleted")
        jsonschema.validate(deleted, {**schema, "$ref": "#/definitions/repository$deleted"})
        assert post(client, "repository", deleted).status_code == 202
        wait_idle(client)
        assert store.branch_states(widgets.id) == [] and not (settings.home / "mirrors" / f"{widgets.id}.git").exists()
    assert github.errors == []


def test_healthz_and_metrics(paused):
    health = paused.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    post(paused, "ping", example("ping/default"))
    text = paused.get("/metrics").text
    assert 'ragcode_deliveries_total{event="ping",outcome="ping"}' in text
    assert "ragcode_queue_depth" in text and 'ragcode_jobs{state="parked"}' in text


# commands, run by the workers against the stand-in


def test_help_command_gets_eyes_and_a_reply(tmp_path, github, keys, source):
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys))) as client:
        assert post(client, "issue_comment", comment_payload(source[1], INSTALLATION, "/ragcode help")).status_code == 202
        wait_idle(client)
    assert [r["content"] for r in github.reactions if r["comment"] == 4242] == ["eyes"]
    [reply] = github.comments_on("acme/widgets", 1)
    assert "/ragcode search" in reply["body"]
    assert github.recorded("GET", r"/repos/acme/widgets/collaborators/octocat/permission")
    assert github.errors == []


def test_commands_need_write_permission_by_default(tmp_path, github, keys, source):
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys))) as client:
        post(client, "issue_comment", comment_payload(source[1], INSTALLATION, "/ragcode help", login="reader"))
        post(client, "issue_comment", comment_payload(source[1], INSTALLATION, "/ragcode help", login="stranger"))
        wait_idle(client)
    assert len(github.recorded("GET", r"/repos/acme/widgets/collaborators/\w+/permission")) == 2
    assert github.reactions == [] and github.comments == []
    assert github.errors == []


def test_rate_limit_gets_a_polite_reply_without_eyes(tmp_path, github, keys, source):
    settings = make_settings(tmp_path / "home", github, keys, rate_limit_per_hour=1, workers=1)
    with TestClient(create_app(settings)) as client:
        for comment_id in (1, 2):
            payload = comment_payload(source[1], INSTALLATION, "/ragcode help", comment_id=comment_id)
            post(client, "issue_comment", payload)
            wait_idle(client)
    assert [r["comment"] for r in github.reactions] == [1]
    replies = [c["body"] for c in github.comments_on("acme/widgets", 1)]
    assert len(replies) == 2 and "잠시 후 다시" in replies[1]


def test_questions_before_the_first_index_say_so(tmp_path, github, keys, source):
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys))) as client:
        post(client, "issue_comment", comment_payload(source[1], INSTALLATION, "/ragcode search hello"))
        wait_idle(client)
    [reply] = github.comments_on("acme/widgets", 1)
    assert "색인하는 중" in reply["body"]


# GitHub access


def test_installation_tokens_are_cached_until_shortly_before_expiry(tmp_path, github, keys):
    app = GitHubApp(make_settings(tmp_path, github, keys))
    assert app.token(INSTALLATION) == app.token(INSTALLATION)
    [grant] = github.recorded("POST", rf"/app/installations/{INSTALLATION}/access_tokens")
    assert grant.auth == "app"
    github.token_ttl = 60  # tokens that expire within the refresh margin are replaced on every use
    app.token(8)
    app.token(8)
    assert len(github.recorded("POST", r"/app/installations/8/access_tokens")) == 2
    assert github.errors == []


def test_a_jwt_signed_with_another_key_is_refused(tmp_path, github, keys):
    other_key, _ = generate_private_key()
    app = GitHubApp(make_settings(tmp_path, github, keys, github_private_key=other_key))
    with pytest.raises(GithubException) as raised:
        app.token(INSTALLATION)
    assert raised.value.status == 401


def test_serve_refuses_to_start_without_secret_or_app_credentials(tmp_path, github, keys):
    settings = make_settings(tmp_path, github, keys)
    check_app_settings(settings)
    for change, variable in [({"github_webhook_secret": ""}, "GITHUB_WEBHOOK_SECRET"),
                             ({"github_app_id": ""}, "GITHUB_APP_ID"),
                             ({"github_private_key": "not a key"}, "GITHUB_PRIVATE_KEY"),
                             ({"github_private_key": "", "github_private_key_path": str(tmp_path / "none.pem")},
                              "GITHUB_PRIVATE_KEY_PATH")]:
        with pytest.raises(ConfigError, match=variable):
            check_app_settings(make_settings(tmp_path, github, keys, **change))


def test_mirrors_fetch_new_commits_and_prune_deleted_branches(tmp_path):
    work = make_repo(tmp_path / "src", {"a.py": "x = 1\n"})
    work.create_head("feature")
    mirrors = Mirrors(tmp_path / "mirrors", allow_file_urls=True)
    mirror = mirrors.sync(17, f"file://{tmp_path / 'src'}", token=None)
    first = branch_head(mirror, "main")
    assert first == work.head.commit.hexsha and branch_head(mirror, "feature") == first
    (tmp_path / "src/a.py").write_text("x = 2\n")
    work.index.add(["a.py"])
    second = work.index.commit("change").hexsha
    work.delete_head("feature", force=True)
    mirror = mirrors.sync(17, f"file://{tmp_path / 'src'}", token=None)
    assert branch_head(mirror, "main") == second and branch_head(mirror, "feature") is None
    assert mirror.bare and mirror.commit(first).hexsha == first  # the earlier objects are kept, not re-cloned


def test_mirrors_fetch_a_pull_requests_head_from_the_repository_itself_and_forget_it(tmp_path):
    work = make_repo(tmp_path / "src", {"a.py": "x = 1\n"})
    url = f"file://{tmp_path / 'src'}"
    mirrors = Mirrors(tmp_path / "mirrors", allow_file_urls=True)
    with pytest.raises(MirrorError, match="no mirror yet"):
        mirrors.fetch_pull(17, url, None, 3)
    mirror = mirrors.sync(17, url, token=None)
    with pytest.raises(MirrorError, match="git fetch of repository 17 failed"):
        mirrors.fetch_pull(17, url, None, 3)  # no such pull request
    (tmp_path / "src/a.py").write_text("x = 2\n")
    work.index.add(["a.py"])
    head = work.index.commit("proposed").hexsha
    work.git.reset("--hard", "HEAD~1")
    work.git.update_ref("refs/pull/3/head", head)  # what GitHub keeps for pull request 3
    assert mirrors.fetch_pull(17, url, None, 3) == head
    mirrors.sync(17, url, token=None)  # a later sync prunes branches, never pull request heads
    assert mirror.git.rev_parse("refs/pull/3/head") == head
    mirrors.drop_pull(17, 3)
    mirrors.drop_pull(17, 3)  # twice is fine
    assert mirror.git.for_each_ref("refs/pull") == ""
    with pytest.raises(MirrorError, match="RAGCODE_ALLOW_FILE_URLS"):
        Mirrors(tmp_path / "mirrors").fetch_pull(17, url, None, 3)


def test_mirrors_refuse_file_urls_unless_allowed_and_other_schemes(tmp_path):
    with pytest.raises(MirrorError, match="RAGCODE_ALLOW_FILE_URLS"):
        Mirrors(tmp_path).sync(17, f"file://{tmp_path}", token=None)
    for url in ("http://github.example/a/b.git", "ssh://git@github.example/a/b.git", "/srv/a/b.git"):
        with pytest.raises(MirrorError):
            Mirrors(tmp_path, allow_file_urls=True).sync(17, url, token=None)
    assert Mirrors(tmp_path).path(17) == tmp_path / "17.git"


def test_mirrors_refuse_repositories_over_the_size_limit(tmp_path):
    make_repo(tmp_path / "src", {f"f{i}.py": f"x = {'9' * 4000}{i}\n" for i in range(40)})
    url = f"file://{tmp_path / 'src'}"
    with pytest.raises(MirrorError, match="RAGCODE_MAX_REPO_MB"):
        Mirrors(tmp_path / "m1", allow_file_urls=True).sync(17, url, token=None, size_kb=5 * 1024 * 1024)
    assert not (tmp_path / "m1" / "17.git").exists(), "a repository GitHub says is too large is not fetched"
    with pytest.raises(MirrorError, match="RAGCODE_MAX_REPO_MB"):
        Mirrors(tmp_path / "m2", allow_file_urls=True, max_bytes=20_000).sync(17, url, token=None)
    assert not (tmp_path / "m2" / "17.git").exists(), "a mirror over the limit is not kept"
    assert Mirrors(tmp_path / "m3", allow_file_urls=True).sync(17, url, token=None).bare


def test_a_push_of_a_repository_over_the_size_limit_says_so_in_its_check_run(tmp_path, github, keys, source):
    payload = push_payload(source[1], INSTALLATION, "main", "0" * 40, source[0].head.commit.hexsha)
    payload["repository"]["size"] = 50 * 1024  # KB, as GitHub reports it
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys, max_repo_mb=10))) as client:
        assert post(client, "push", payload).status_code == 202
        wait_idle(client)
        assert client.app.state.queue.counts() == {"queued": 0, "running": 0, "parked": 0}, "not retried"
    [check] = github.checks_for("acme/widgets")
    assert check["conclusion"] == "failure" and "RAGCODE\\_MAX\\_REPO\\_MB" in check["output"]["summary"]
    assert not (tmp_path / "home" / "mirrors" / f"{source[1].id}.git").exists()


def test_the_token_reaches_git_as_a_header_not_in_the_url():
    env = auth_env("https://github.example/a/b.git", "ghs_secret")
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader" and "ghs_secret" not in env["GIT_CONFIG_VALUE_0"]
    assert "GIT_CONFIG_COUNT" not in auth_env("file:///srv/a/b.git", "ghs_secret")


# check run texts


def test_check_run_title_and_summary_state_the_counts_usage_and_failures():
    report = IndexReport(repo="acme/widgets", branch="main", commit="b" * 40, previous_commit="a" * 40,
                         files_changed=3, functions_total=40, functions_added=1, functions_updated=2,
                         functions_removed=1, functions_unchanged=36, summaries_generated=3, summaries_reused=1,
                         functions_failed=["calc.py:Calculator.divide"], seconds=4.25,
                         usage={"us-east-1": {"calls": 2, "errors": 1}, "eu-central-1": {"calls": 1, "errors": 0}})
    errors = ["unknown key `colour`"]
    assert checks.title(report) == "1 added, 2 updated, 1 removed, 3 summarized, 1 failed"
    assert checks.title(report, errors).endswith("(configuration has errors)")
    summary = checks.summary(report, errors)
    assert "| Summaries generated | 3 |" in summary and "| Summaries reused | 1 |" in summary
    assert "| Time | 4.2 s |" in summary or "| Time | 4.3 s |" in summary
    assert "| `us-east-1` | 2 | 1 |" in summary and "| `eu-central-1` | 1 | 0 |" in summary
    assert "- `calc.py:Calculator.divide`" in summary
    assert "unknown key \\`colour\\`" in summary


# what GitHub accepts, and what the public sees when something fails


def test_an_answer_longer_than_github_allows_is_cut_to_fit_and_posted_once(tmp_path, github, keys):
    lines = "\n".join(f"    note_{number} = \"{'lorem ipsum dolor ' * 30}\"" for number in range(180))
    source = f"def export_quarterly_ledger():\n    \"\"\"Export the quarterly ledger.\"\"\"\n{lines}\n    return 1\n"
    make_repo(tmp_path / "ledger", {"ledger.py": source})
    repo = github.add_repo("acme/ledger", f"file://{tmp_path / 'ledger'}", octocat="write")
    # an operator who allows units this long gets offline answers (the function's code) over GitHub's limit
    settings = make_settings(tmp_path / "home", github, keys, min_score=0.0, summary_lang="en",
                             max_unit_chars=200_000)
    with TestClient(create_app(settings)) as client:
        post(client, "installation", installation_payload([repo], INSTALLATION))
        wait_idle(client)
        post(client, "issue_comment", comment_payload(repo, INSTALLATION, "/ragcode export the quarterly ledger"))
        wait_idle(client, timeout=60)
        assert client.app.state.queue.counts()["parked"] == 0
    [reply] = github.comments_on("acme/ledger", 1)
    body = reply["body"]
    assert len(source) > 65_536 and len(body) <= 65_536
    assert "The answer was cut here" in body and "#### References" in body and "ledger.py" in body
    assert body.count("```") == 2  # the code block was closed before the note
    assert len(github.recorded("POST", r"/repos/acme/ledger/issues/1/comments")) == 1
    assert github.errors == []


def test_a_reply_github_refuses_is_replaced_by_a_short_explanation_and_not_retried(tmp_path, github, keys, source,
                                                                                   caplog):
    github.refuse_comments.append("was submitted too quickly")
    with TestClient(create_app(make_settings(tmp_path / "home", github, keys, summary_lang="en"))) as client:
        post(client, "issue_comment", comment_payload(source[1], INSTALLATION, "/ragcode help"))
        wait_idle(client)
        assert client.app.state.queue.counts() == {"queued": 0, "running": 0, "parked": 0}
    [note] = github.comments_on("acme/widgets", 1)
    reference = re.search(r"\(reference ([0-9a-f]+)\)", note["body"])[1]
    assert "could not be posted" in note["body"] and "submitted too quickly" not in note["body"]
    assert len(github.recorded("POST", r"/repos/acme/widgets/issues/1/comments")) == 2  # the reply, the note
    assert [r["content"] for r in github.reactions] == ["eyes"]  # not run a second time
    [logged] = [record for record in caplog.records if getattr(record, "reference", None) == reference]
    assert "submitted too quickly" in logged.exc_text or "submitted too quickly" in str(logged.exc_info[1])


def test_a_failed_index_run_shows_a_generic_check_run_with_a_reference(tmp_path, github, keys, source, caplog):
    denial = ("User: arn:aws:sts::123456789012:assumed-role/ragcode-prod/i-0abc is not authorized to perform "
              "bedrock:InvokeModel; see https://models.internal.example/v1")
    models = OpenAIStandin()
    try:
        settings = make_settings(tmp_path / "home", github, keys, embedder="openai", openai_base_url=(models.url,),
                                 openai_embed_model="nomic-embed-text", openai_api_key=API_KEY, job_max_attempts=1)
        with TestClient(create_app(settings)) as client:  # starting up embeds a probe: the models answered then
            models.deny = denial
            post(client, "installation", installation_payload([source[1]], INSTALLATION))
            wait_idle(client)
    finally:
        models.close()
    [run] = github.checks_for("acme/widgets")
    assert run["conclusion"] == "failure" and run["output"]["title"] == "Indexing failed"
    summary = run["output"]["summary"]
    for private in ("arn:aws", "123456789012", "internal.example", models.url, "Error"):
        assert private not in summary
    reference = re.search(r"Reference `([0-9a-f]+)`", summary)[1]
    [logged] = [record for record in caplog.records if getattr(record, "reference", None) == reference]
    assert "123456789012" in str(logged.exc_info[1])
