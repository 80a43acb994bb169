"""``/ragcode`` comments on issues and pull requests: permission, rate limit, 👀, then a reply."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from github.Issue import Issue
from github.Repository import Repository

from bot import logs
from bot.commands.answer import answer
from bot.commands.parse import help_text, is_command, parse_command
from bot.llm.usage import metering
from bot.queue import Job, JobSpec
from bot.repo_config import PERMISSIONS, RepoConfig, defaults, load_config
from bot.spend import monthly_budget, record_meter
from bot.webhooks.push import index_job, job_repository, repository_details, repository_of
from bot.webhooks.router import Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.comments")
router = Router()
MAX_BOOST_PATHS = 300

REPLIES = {
    "ko": {
        "indexing": "이 저장소는 아직 색인하는 중입니다. 색인이 끝나면 다시 요청해 주세요.",
        "rate": "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요 (한 시간에 사용자당 {per_user}회).",
        "reindex": "기본 브랜치 `{branch}`을(를) 처음부터 다시 색인합니다. 진행 상황은 커밋의 `ragcode` 체크에서 볼 수 있습니다.",
        "error": "요청을 처리하지 못했습니다. 잠시 후 다시 시도해 주세요. (참조 번호 {reference})",
        "unposted": "답변을 이 스레드에 올리지 못했습니다. 요청을 줄이거나 잠시 후 다시 시도해 주세요. (참조 번호 {reference})",
        "budget": "이 설치의 이번 달 모델 사용 예산(${limit:,.2f})을 모두 써서 코드 생성을 멈췄습니다. 다음 달에 "
                  "다시 생성하며, 그때까지는 관련 함수만 찾아 드립니다(`/ragcode search`도 그대로 쓸 수 있습니다).",
    },
    "en": {
        "indexing": "This repository is still being indexed. Please ask again when indexing has finished.",
        "rate": "Too many requests; please try again later (at most {per_user} an hour per user).",
        "reindex": "Re-indexing the default branch `{branch}` from scratch; the `ragcode` check on its head shows progress.",
        "error": "Sorry, this request could not be answered. Please try again later. (reference {reference})",
        "unposted": "The answer could not be posted here. Please narrow the request or try again later. "
                    "(reference {reference})",
        "budget": "Code generation is paused: this installation has used its monthly model budget (${limit:,.2f}). "
                  "It resumes next month; until then the related functions are listed instead (`/ragcode search` "
                  "works as usual).",
    },
}


@router.register("issue_comment", action="created")
def on_comment(event: Event) -> list[JobSpec]:
    """Queue a command from a new comment that starts with ``/ragcode``; bots are ignored."""
    body = field(event.data, "comment", "body", kind=(str, type(None)))
    if not is_command(body):
        return []
    if field(event.data, "comment", "user", "type") == "Bot":
        return []
    command = parse_command(body)
    assert command is not None  # is_command() held
    repo = repository_of(event.data)
    payload = {
        "installation": repo.installation,
        "repo": repo.name,
        "repo_id": repo.id,
        "issue": field(event.data, "issue", "number", kind=int),
        "pull_request": isinstance(event.data["issue"].get("pull_request"), dict),
        "comment": field(event.data, "comment", "id", kind=int),
        "user": field(event.data, "comment", "user", "login"),
        "command": command.kind,
        "text": command.text,
        **repository_details(event.data),
    }
    return [JobSpec("command", repo.name, payload, repo_id=repo.id)]


def run_command(context: Context, job: Job) -> None:
    """Answer one command; a failure is explained in a comment rather than retried."""
    payload = job.payload
    repo = job_repository(payload)
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id}
    github_repo = context.app.client(repo.installation).get_repo(repo.name)
    if github_repo.id != repo.id:
        log.warning("ignoring a command for %s: the name now belongs to another repository", repo.name, extra=extra)
        return
    config = _config(context, payload)
    texts = REPLIES[config.options.summary_lang]
    role = permission(github_repo, payload["user"])
    if rank(role) < rank(config.command_permission):
        log.info("ignoring %s from %s (permission %s)", payload["command"], payload["user"], role, extra=extra)
        return
    issue = github_repo.get_issue(payload["issue"])
    per_user, per_repo = config.rate_limit_per_hour, context.settings.repo_rate_limit_per_hour
    if not context.queue.record_command(repo.id, payload["user"], per_user=per_user, per_repo=per_repo):
        issue.create_comment(texts["rate"].format(per_user=per_user))
        log.info("rate limit reached for %s", payload["user"], extra=extra)
        return
    issue.get_comment(payload["comment"]).create_reaction("eyes")
    try:
        reply = _reply(context, job, github_repo, config)
    except Exception:
        reference = logs.reference()
        log.exception("command failed", extra=extra | {"reference": reference})
        reply = texts["error"].format(reference=reference)
    failure = _post(issue, reply)
    if failure is None:
        log.info("answered %s", payload["command"], extra=extra)
        return
    # The job ends here either way: a retry would run the command again and count against the rate limit.
    reference = logs.reference()
    log.error("posting the reply failed; posting a short explanation instead", exc_info=failure,
              extra=extra | {"reference": reference, "characters": len(reply)})
    failure = _post(issue, texts["unposted"].format(reference=reference))
    if failure is not None:
        log.error("posting the explanation failed too", exc_info=failure, extra=extra | {"reference": reference})


def _post(issue: Issue, body: str) -> Exception | None:
    """Post a comment; the error when GitHub refuses it (never shown on GitHub, only logged)."""
    try:
        issue.create_comment(body)
    except Exception as error:  # GithubException for 4xx, requests' errors for the connection
        return error
    return None


def _reply(context: Context, job: Job, github_repo: Repository, config: RepoConfig) -> str:
    payload = job.payload
    lang = config.options.summary_lang
    repo, branch = job_repository(payload), payload["default_branch"]
    if payload["command"] == "help":
        return help_text(lang)
    if payload["command"] == "reindex":
        spec = index_job(repo, branch=branch, full=True,
                         details={key: payload[key] for key in ("clone_url", "html_url", "default_branch")})
        context.queue.add(spec, origin=job.delivery)
        return REPLIES[lang]["reindex"].format(branch=branch.replace("`", ""))
    # a first index is searchable as soon as its documents are written; until then, and only then, ask to wait
    if context.runtime.store.branch_state(repo.id, branch) is None:
        return REPLIES[lang]["indexing"]
    boost = changed_files(github_repo, payload["issue"]) if payload["pull_request"] else ()
    search_only = payload["command"] == "search"
    budget = monthly_budget(context.settings, context.runtime.spend, repo.installation)
    spent = budget if budget is not None and budget.exhausted and not search_only else None  # no generation
    with metering() as meter:
        try:
            result = answer(context.runtime, repo, branch, payload["text"], html_url=payload["html_url"],
                            boost_paths=boost, search_only=search_only or spent is not None, lang=lang,
                            tests=config.tests)
        finally:
            record_meter(context.runtime.spend, repo.installation, meter)
    if spent is not None:
        log.info("monthly budget reached; answering without generation", extra={"repo_id": repo.id})
        return f"{REPLIES[lang]['budget'].format(limit=spent.limit_usd)}\n\n{result.markdown}"
    return result.markdown


def _config(context: Context, payload: dict[str, Any]) -> RepoConfig:
    """The repository's configuration from its mirror as last fetched (defaults before the first fetch)."""
    mirror = context.mirrors.open(int(payload["repo_id"]))
    if mirror is None:
        return defaults(context.settings)
    return load_config(mirror, f"refs/heads/{payload['default_branch']}", context.settings)


def permission(github_repo: Repository, user: str) -> str:
    """The user's role on the repository: read, triage, write, maintain, admin or none."""
    _, data = github_repo.requester.requestJsonAndCheck(
        "GET", f"{github_repo.url}/collaborators/{quote(user, safe='')}/permission"
    )
    role = data.get("role_name")
    return role if role in PERMISSIONS else str(data.get("permission") or "none")


def rank(role: str) -> int:
    """Order of roles; unknown roles and ``none`` rank lowest."""
    return PERMISSIONS.index(role) if role in PERMISSIONS else -1


def changed_files(github_repo: Repository, number: int) -> list[str]:
    """Paths a pull request changes (``GET /repos/{o}/{r}/pulls/{n}/files``)."""
    paths = []
    for changed in github_repo.get_pull(number).get_files():
        paths.append(changed.filename)
        if len(paths) >= MAX_BOOST_PATHS:
            break
    return paths
