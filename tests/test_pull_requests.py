"""Pull requests through the webhook service in-process (Starlette's test client): the real ``pull_request``
payloads, the GitHub stand-in (``GET /pulls/{n}`` checked against the OpenAPI description) and the Bedrock
stand-in, which counts summary requests and records prompts."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from openapi_core.testing import MockRequest, MockResponse
from starlette.testclient import TestClient

from bot.config import Settings
from bot.documents import overlay_branch
from bot.freshness import Freshness, Head
from bot.github.client import GitHubApp
from bot.github.mirror import branch_head
from bot.reconcile import reconcile
from bot.webhooks.app import create_app
from tests.bedrock_standin import RegionConfig
from tests.github_standin import (
    comment_payload,
    installation_payload,
    openapi,
    pull_request_payload,
    push_payload,
)
from tests.test_overlay import CART, LEGACY, PRICING, PRICING_PR, UTIL
from tests.test_webhooks import INSTALLATION, make_settings, post, wait_idle


@pytest.fixture
def standin(bedrock):
    return bedrock({"us-east-1": RegionConfig(latency=0.0)})


@pytest.fixture
def shop(make_repo, github):
    """acme/shop on main, and its pull request branch ``bulk`` (one function of pricing.py changed, one added there,
    legacy.py deleted, util.py renamed to text.py), not opened yet."""
    repo = make_repo("shop")
    for path, text in {"shop/pricing.py": PRICING, "shop/cart.py": CART, "shop/legacy.py": LEGACY,
                       "shop/util.py": UTIL}.items():
        repo.write(path, text)
    base = repo.commit("shop")
    repo.repo.git.checkout("-b", "bulk")
    repo.write("shop/pricing.py", PRICING_PR)
    repo.remove("shop/legacy.py")
    repo.move("shop/util.py", "shop/text.py")
    head = repo.commit("bulk discounts")
    repo.repo.git.checkout("main")
    remote = github.add_repo("acme/shop", f"file://{repo.path}", octocat="write")
    return repo, remote, base, head


def settings_for(tmp_path, github, keys, **overrides) -> Settings:
    values = dict(llm="bedrock", embedder="bedrock", summary_lang="en", bedrock_regions=("us-east-1",),
                  bedrock_cooldown=0.5)
    return make_settings(tmp_path / "home", github, keys, **(values | overrides))


def installed(client: TestClient, remote) -> None:
    assert post(client, "installation", installation_payload([remote], INSTALLATION)).status_code == 202
    wait_idle(client)


def store_of(client: TestClient):
    return client.app.state.workers.context.runtime.store


def summarized(standin) -> Counter[str]:
    names = Counter(standin.summarized())
    standin.stats["us-east-1"].summarized.clear()
    return names


def ask(client: TestClient, remote, text: str, comment_id: int, number: int = 7) -> None:
    payload = comment_payload(remote, INSTALLATION, text, issue=number, pull_request=True, comment_id=comment_id)
    assert post(client, "issue_comment", payload).status_code == 202
    wait_idle(client)


def test_pull_request_events_queue_a_refresh_or_a_drop_of_its_overlay(tmp_path, github, keys, shop):
    repo, remote, base, head = shop
    pull = github.open_pull(remote, 7, head, head_ref="bulk")
    settings = make_settings(tmp_path / "home", github, keys, pause_workers=True)
    with TestClient(create_app(settings)) as client:
        queue = client.app.state.queue
        expected = {"opened": "overlay", "reopened": "overlay", "synchronize": "overlay", "closed": "drop_overlay"}
        for action, kind in expected.items():
            payload = pull_request_payload(remote, INSTALLATION, action, pull, before=base)
            assert post(client, "pull_request", payload).status_code == 202, action
            job = queue.claim()
            assert (job.kind, job.payload["number"], job.repo_id) == (kind, 7, remote.id), action
            queue.finish(job.id)
        labeled = pull_request_payload(remote, INSTALLATION, "opened", pull) | {"action": "labeled"}
        assert post(client, "pull_request", labeled).json()["ignored"] is True
        new_base = pull_request_payload(remote, INSTALLATION, "opened", pull) | {
            "action": "edited", "changes": {"base": {"ref": {"from": "develop"}, "sha": {"from": base}}}}
        assert post(client, "pull_request", new_base).status_code == 202
        assert queue.claim().kind == "overlay"
        # two refreshes of one pull request queued before a worker gets to them are one run
        for action in ("synchronize", "synchronize"):
            payload = pull_request_payload(remote, INSTALLATION, action, pull, before=base)
            payload["sender"]["id"] += len(action) + queue.counts()["queued"]  # another delivery body
            post(client, "pull_request", payload)
        assert queue.counts()["queued"] == 1


def test_the_overlay_follows_the_pull_request_from_opened_to_closed(tmp_path, github, keys, shop, standin):
    repo, remote, base, head = shop
    settings = settings_for(tmp_path, github, keys)
    with TestClient(create_app(settings)) as client:
        installed(client, remote)
        summarized(standin)
        pull = github.open_pull(remote, 7, head, head_ref="bulk")
        assert post(client, "pull_request", pull_request_payload(remote, INSTALLATION, "opened", pull)).status_code == 202
        wait_idle(client)
        store = store_of(client)
        assert summarized(standin) == Counter(["apply_coupon", "apply_bulk_discount"])
        state = store.branch_state(remote.id, overlay_branch(7))
        assert state.commit == head
        # the status page reads the overlay's head from the mirror: pull:7 is no branch to ask GitHub about
        freshness = Freshness(github.url, GitHubApp(settings).token, settings.home / "mirrors", 10)
        assert freshness.heads([state])[(remote.id, overlay_branch(7))] == Head(head, "mirror", 0)
        assert not github.recorded("GET", r"/repos/acme/shop/branches/.*")
        ask(client, remote, "/ragcode search give a bulk discount when the quantity is ten or more", 701)
        reply = github.comments_on("acme/shop", 7)[-1]["body"]
        assert f"{remote.html_url}/blob/{head}/shop/pricing.py#L20-L22" in reply and "apply_bulk_discount" in reply
        assert "still being indexed" not in reply
        ask(client, remote, "/ragcode write a total with the coupon for the cart", 702)
        prompt = standin.prompts[-1]
        assert "rate = min(max(rate, 0.0), 1.0)" in prompt, "the prompt holds the pull request's code"
        assert "Take five percent off" not in prompt, "nothing of the file the pull request deleted"

        repo.repo.git.checkout("bulk")
        repo.write("shop/pricing.py", PRICING_PR.replace("(1 + rate), 2)", "(1 + rate), 3)"))
        second = repo.commit("tax to the tenth of a cent")
        repo.repo.git.checkout("main")
        pull = github.open_pull(remote, 7, second, head_ref="bulk")
        synchronize = pull_request_payload(remote, INSTALLATION, "synchronize", pull, before=head)
        assert (synchronize["before"], synchronize["after"]) == (head, second)
        assert post(client, "pull_request", synchronize).status_code == 202
        wait_idle(client)
        assert summarized(standin) == Counter(["add_tax"])
        assert store.overlay(remote.id, overlay_branch(7)).head == second

        github.close_pull(remote, 7, merged=False)
        assert post(client, "pull_request", pull_request_payload(remote, INSTALLATION, "closed", pull)).status_code == 202
        wait_idle(client)
        assert store.overlay(remote.id, overlay_branch(7)) is None
        assert store.branch_state(remote.id, overlay_branch(7)) is None and store.refs(remote.id, overlay_branch(7)) == []
        mirror = client.app.state.workers.context.mirrors.open(remote.id)
        assert mirror.git.for_each_ref("refs/pull") == "", "the closed pull request's head is let go"
        ask(client, remote, "/ragcode search give a bulk discount when the quantity is ten or more", 703)
        assert head not in github.comments_on("acme/shop", 7)[-1]["body"], "a closed pull request: the base"
        assert summarized(standin) == Counter()
    assert github.recorded("GET", r"/repos/acme/shop/pulls/7")
    assert github.errors == []


def test_a_command_before_the_overlay_is_ready_answers_from_the_base_and_queues_it(tmp_path, github, keys, shop,
                                                                                   standin):
    repo, remote, base, head = shop
    github.open_pull(remote, 7, head, head_ref="bulk")
    remote.pull_files[7] = ["shop/pricing.py", "shop/legacy.py", "shop/util.py", "shop/text.py"]
    with TestClient(create_app(settings_for(tmp_path, github, keys, workers=1))) as client:
        installed(client, remote)
        ask(client, remote, "/ragcode search apply a coupon discount rate to a price", 711)
        first, = [c["body"] for c in github.comments_on("acme/shop", 7)]
        assert "still being indexed, so this answer is from the base branch `main`" in first
        assert f"/blob/{base}/shop/pricing.py" in first and head not in first
        assert github.recorded("GET", r"/repos/acme/shop/pulls/7/files"), "the base, boosted by the PR's files"
        # the command queued the overlay; it ran after the reply
        assert store_of(client).branch_state(remote.id, overlay_branch(7)).commit == head
        ask(client, remote, "/ragcode search apply a coupon discount rate to a price", 712)
        second = github.comments_on("acme/shop", 7)[-1]["body"]
        assert f"/blob/{head}/shop/pricing.py#L4-L7" in second and "still being indexed" not in second
    assert github.errors == []


def test_fork_pull_requests_are_refused_by_default_and_indexed_when_the_configuration_allows(
        tmp_path, github, keys, shop, standin):
    repo, remote, base, head = shop
    with TestClient(create_app(settings_for(tmp_path, github, keys))) as client:
        installed(client, remote)
        summarized(standin)
        pull = github.open_pull(remote, 9, head, head_ref="bulk", fork=True)
        repo.repo.git.branch("-D", "bulk")  # the branch lives in the fork: the repository only has refs/pull/9/head
        opened = pull_request_payload(remote, INSTALLATION, "opened", pull)
        assert opened["pull_request"]["head"]["repo"]["fork"] is True
        assert post(client, "pull_request", opened).status_code == 202
        wait_idle(client)
        store = store_of(client)
        assert store.branch_state(remote.id, overlay_branch(9)) is None and summarized(standin) == Counter()
        mirror = client.app.state.workers.context.mirrors.open(remote.id)
        assert mirror.git.for_each_ref("refs/pull") == "", "a fork's head is not even fetched"
        ask(client, remote, "/ragcode search apply a coupon discount rate to a price", 721, number=9)
        reply = github.comments_on("acme/shop", 9)[-1]["body"]
        assert "comes from a fork" in reply and "`pull_requests_from_forks`" in reply and head not in reply

        repo.write(".github/ragcode.yml", "pull_requests_from_forks: true\n")
        allowed = repo.commit("index pull requests from forks")
        assert post(client, "push", push_payload(remote, INSTALLATION, "main", base, allowed)).status_code == 202
        wait_idle(client)
        assert summarized(standin) == Counter(["<lines 1-1>"]), "the push indexed the configuration file itself"
        assert post(client, "pull_request", pull_request_payload(remote, INSTALLATION, "synchronize", pull,
                                                                 before=base)).status_code == 202
        wait_idle(client)
        overlay = store.overlay(remote.id, overlay_branch(9))
        assert overlay is not None and overlay.fork is True and overlay.head == head
        assert summarized(standin) == Counter(["apply_coupon", "apply_bulk_discount"])
        assert branch_head(mirror, "bulk") is None, "only refs/pull/9/head of the base repository was fetched"
        ask(client, remote, "/ragcode search apply a coupon discount rate to a price", 722, number=9)
        assert f"/blob/{head}/shop/pricing.py#L4-L7" in github.comments_on("acme/shop", 9)[-1]["body"]
    assert github.errors == []


def test_reconcile_refreshes_a_stale_overlay_and_drops_one_whose_pull_request_closed(tmp_path, github, keys, shop,
                                                                                     standin):
    repo, remote, base, head = shop
    github.installations = {INSTALLATION}
    settings = settings_for(tmp_path, github, keys, llm="offline", embedder="bedrock")
    with TestClient(create_app(settings)) as client:
        installed(client, remote)
        pull = github.open_pull(remote, 7, base, head_ref="bulk")  # opened before the branch had commits
        post(client, "pull_request", pull_request_payload(remote, INSTALLATION, "opened", pull))
        wait_idle(client)
        store, queue, app = store_of(client), client.app.state.queue, GitHubApp(settings)
        assert store.branch_state(remote.id, overlay_branch(7)).commit == base
        github.open_pull(remote, 7, head, head_ref="bulk")  # pushed while the service was down
        report = reconcile(app, store, queue, base_url=github.url, min_rate=10)
        assert [(q["branch"], q["reason"], q["head"]) for q in report.queued] == [(overlay_branch(7), "stale", head)]
        wait_idle(client)
        assert store.branch_state(remote.id, overlay_branch(7)).commit == head
        assert reconcile(app, store, queue, base_url=github.url, min_rate=10).queued == []
        github.close_pull(remote, 7, merged=True)  # closed while the service was down
        report = reconcile(app, store, queue, base_url=github.url, min_rate=10)
        assert [(q["branch"], q["reason"]) for q in report.queued] == [(overlay_branch(7), "closed")]
        wait_idle(client)
        assert store.overlay(remote.id, overlay_branch(7)) is None
        assert [state.branch for state in store.branch_states(remote.id)] == ["main"]
    assert github.errors == []


def test_the_stand_in_answers_pull_requests_as_the_openapi_description_says(github, shop):
    repo, remote, base, head = shop
    for number, fork in ((7, False), (9, True)):
        github.open_pull(remote, number, head, head_ref="bulk", fork=fork)
        status, body = github._repo_route("GET", remote, f"/pulls/{number}", None, {})
        request = MockRequest("https://api.github.com", "get", f"/repos/acme/shop/pulls/{number}")
        openapi().validate_response(request, MockResponse(json.dumps(body).encode(), status_code=status,
                                                          content_type="application/json"))
        assert (body["head"]["sha"], body["head"]["repo"]["fork"], body["base"]["ref"]) == (head, fork, "main")
        assert (body["head"]["repo"]["id"] == remote.id) is not fork
    assert repo.repo.git.rev_parse("refs/pull/7/head") == head, "GitHub keeps every pull request's head there"
