"""``/ragcode`` on GitHub: issue and pull-request comments, review comments (answered in their review thread,
with a suggestion for the commented lines when asked for a change) and new issues' bodies; permission, rate
limit, 👀, then a reply that knows the thread. ``auto_answer`` repositories get the related functions of every
new issue."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from github.Repository import Repository

from bot import logs
from bot.commands.answer import Answer, answer
from bot.commands.followup import make_marker
from bot.commands.footer import footer
from bot.commands.parse import help_text, is_command, parse_command
from bot.commands.render import MAX_REPLY_CHARS
from bot.commands.suggest import asks_for_change
from bot.documents import Repository as RepositoryId
from bot.feedback import remember_reply
from bot.llm.usage import metering
from bot.queue import Job, JobSpec
from bot.repo_config import PERMISSIONS, RepoConfig, defaults, load_config
from bot.spend import monthly_budget, record_meter
from bot.webhooks import threads
from bot.webhooks.pulls import pull_request_view
from bot.webhooks.push import index_job, job_repository, repository_details, repository_of
from bot.webhooks.router import BadPayload, Event, Router, field
from bot.workers import Context

log = logging.getLogger("ragcode.comments")
router = Router()
MAX_BOOST_PATHS = 300
MAX_ISSUE_QUERY_CHARS = 2_000  # of a new issue's body searched with for an automatic answer
MAX_TITLE_CHARS = 300  # of a new issue's title (GitHub allows 256)
MAX_PATH_CHARS = 4_096  # of the path a review comment is on
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
FOOTER_RESERVE = 8_000  # characters of a reply kept for its footer and marker

REPLIES = {
    "ko": {
        "indexing": "이 저장소는 아직 색인하는 중입니다. 색인이 끝나면 다시 요청해 주세요.",
        "rate": "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요 (한 시간에 사용자당 {per_user}회).",
        "reindex": "기본 브랜치 `{branch}`을(를) 처음부터 다시 색인합니다. 진행 상황은 커밋의 `ragcode` 체크에서 볼 수 있습니다.",
        "error": "요청을 처리하지 못했습니다. 잠시 후 다시 시도해 주세요. (참조 번호 {reference})",
        "unposted": "답변을 이 스레드에 올리지 못했습니다. 요청을 줄이거나 잠시 후 다시 시도해 주세요. (참조 번호 {reference})",
        "budget": "이 설치의 이번 달 모델 사용 예산(${limit:,.2f})을 모두 써서 코드 생성을 멈췄습니다. 다음 달에 "
                  "다시 생성하며, 그때까지는 관련 함수만 찾아 드립니다(`/ragcode search`도 그대로 쓸 수 있습니다).",
        "no_lines": "리뷰 댓글이 달린 줄을 풀 리퀘스트의 최신 커밋에서 읽을 수 없어(삭제된 파일이거나 파일 끝을 넘는 줄) "
                    "제안(suggestion)은 만들지 않았습니다.",
        "auto": "이 이슈와 관련 있을 수 있는 이 저장소의 함수입니다(`.github/ragcode.yml`의 `auto_answer`로 자동 답변). "
                "코드가 필요하면 `/ragcode <요청>`으로 물어봐 주세요.",
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
        "no_lines": "The commented lines could not be read at the pull request's head (a deleted file, or lines past "
                    "its end), so no suggestion is made.",
        "auto": "Functions of this repository that may be related to this issue (an automatic answer: `auto_answer` "
                "in `.github/ragcode.yml`). Ask `/ragcode <request>` for code.",
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
    return [_command_job(event, body, place="issue_comment", number=field(event.data, "issue", "number", kind=int),
                         comment=field(event.data, "comment", "id", kind=int),
                         user=field(event.data, "comment", "user", "login"),
                         pull_request=isinstance(event.data["issue"].get("pull_request"), dict))]


@router.register("issues", action="opened")
def on_issue(event: Event) -> list[JobSpec]:
    """A new issue whose body starts with ``/ragcode`` is a command; any other may get an automatic answer
    (decided by the worker, which reads the repository's ``auto_answer``). Bots' issues are ignored."""
    if field(event.data, "issue", "user", "type") == "Bot":
        return []
    body = field(event.data, "issue", "body", kind=(str, type(None)))
    number = field(event.data, "issue", "number", kind=int)
    user = field(event.data, "issue", "user", "login")
    if is_command(body):
        return [_command_job(event, body, place="issue", number=number, comment=None, user=user, pull_request=False)]
    repo = repository_of(event.data)
    title = field(event.data, "issue", "title")[:MAX_TITLE_CHARS]
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "issue": number,
               "user": user, "text": f"{title}\n{(body or '')[:MAX_ISSUE_QUERY_CHARS]}".strip(),
               **repository_details(event.data)}
    return [JobSpec("auto_answer", repo.name, payload, repo_id=repo.id)]


@router.register("pull_request_review_comment", action="created")
def on_review_comment(event: Event) -> list[JobSpec]:
    """Queue a command from a new review comment that starts with ``/ragcode``: it is answered in its review thread,
    about the lines it is on."""
    body = field(event.data, "comment", "body", kind=(str, type(None)))
    if not is_command(body) or field(event.data, "comment", "user", "type") == "Bot":
        return []
    comment = field(event.data, "comment", kind=dict)
    number = field(event.data, "comment", "id", kind=int)
    root = comment.get("in_reply_to_id")
    path = field(event.data, "comment", "path")
    if not path or len(path) > MAX_PATH_CHARS:
        raise BadPayload("field comment.path is empty or too long")
    review = {
        "path": path,
        "line": _line(comment, "line"),
        "start_line": _line(comment, "start_line"),
        "side": comment.get("side") if comment.get("side") in ("LEFT", "RIGHT") else None,
        "commit_id": _sha(event.data, "comment", "commit_id"),
        "head_sha": _sha(event.data, "pull_request", "head", "sha"),
        "base_sha": _sha(event.data, "pull_request", "base", "sha"),
    }
    return [_command_job(event, body, place="review_comment", number=field(event.data, "pull_request", "number", kind=int),
                         comment=number, user=field(event.data, "comment", "user", "login"), pull_request=True,
                         root=root if isinstance(root, int) and not isinstance(root, bool) and root > 0 else number,
                         review=review)]


def _sha(data: dict[str, Any], *path: str) -> str:
    value = field(data, *path)
    if not SHA.fullmatch(value):
        raise BadPayload(f"field {'.'.join(path)} is not a commit id")
    return str(value)


def _line(comment: dict[str, Any], key: str) -> int | None:
    """A line number of a review comment: a positive integer, or None (an outdated comment has none)."""
    value = comment.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise BadPayload(f"field comment.{key} is not a line number")
    return value


def _command_job(event: Event, body: str | None, *, place: str, number: int, comment: int | None, user: str,
                 pull_request: bool, **extra: Any) -> JobSpec:
    command = parse_command(body)
    assert command is not None  # is_command() held
    repo = repository_of(event.data)
    payload = {"installation": repo.installation, "repo": repo.name, "repo_id": repo.id, "place": place,
               "issue": number, "pull_request": pull_request, "comment": comment, "user": user,
               "command": command.kind, "text": command.text, **extra, **repository_details(event.data)}
    return JobSpec("command", repo.name, payload, repo_id=repo.id)


@dataclass(frozen=True)
class Reply:
    """A reply's text; ``answered`` when it is an answer (it invites feedback and is remembered for it)."""

    body: str
    answered: bool = False


def run_command(context: Context, job: Job) -> None:
    """Answer one command; a failure is explained in a comment rather than retried."""
    payload = job.payload
    repo = job_repository(payload)
    place = threads.place_of(payload)
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id, "place": place.kind}
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
    per_user, per_repo = config.rate_limit_per_hour, context.settings.repo_rate_limit_per_hour
    if not context.queue.record_command(repo.id, payload["user"], per_user=per_user, per_repo=per_repo):
        threads.post(github_repo, place, texts["rate"].format(per_user=per_user))
        log.info("rate limit reached for %s", payload["user"], extra=extra)
        return
    threads.react(github_repo, place, "eyes")
    try:
        reply = _reply(context, job, github_repo, config, place)
    except Exception:
        reference = logs.reference()
        log.exception("command failed", extra=extra | {"reference": reference})
        reply = Reply(texts["error"].format(reference=reference))
    posted, failure = _post(github_repo, place, reply.body)
    if failure is None:
        log.info("answered %s", payload["command"], extra=extra)
        if reply.answered:
            remember_reply(context.queue, repo, place.reply_kind, posted, place.number, context.settings.feedback_days)
        return
    # The job ends here either way: a retry would run the command again and count against the rate limit.
    reference = logs.reference()
    log.error("posting the reply failed; posting a short explanation instead", exc_info=failure,
              extra=extra | {"reference": reference, "characters": len(reply.body)})
    _, failure = _post(github_repo, place, texts["unposted"].format(reference=reference))
    if failure is not None:
        log.error("posting the explanation failed too", exc_info=failure, extra=extra | {"reference": reference})


def _post(github_repo: Repository, place: threads.Place, body: str) -> tuple[int, Exception | None]:
    """Post a comment: its id, or the error when GitHub refuses it (never shown on GitHub, only logged)."""
    try:
        return threads.post(github_repo, place, body), None
    except Exception as error:  # GithubException for 4xx, requests' errors for the connection
        return 0, error


def _reply(context: Context, job: Job, github_repo: Repository, config: RepoConfig, place: threads.Place) -> Reply:
    payload = job.payload
    lang = config.options.summary_lang
    repo, branch = job_repository(payload), payload["default_branch"]
    if payload["command"] == "help":
        return Reply(help_text(lang))
    if payload["command"] == "reindex":
        spec = index_job(repo, branch=branch, full=True,
                         details={key: payload[key] for key in ("clone_url", "html_url", "default_branch")})
        context.queue.add(spec, origin=job.delivery)
        return Reply(REPLIES[lang]["reindex"].format(branch=branch.replace("`", "")))
    # a first index is searchable as soon as its documents are written; until then, and only then, ask to wait
    if context.runtime.store.branch_state(repo.id, branch) is None:
        return Reply(REPLIES[lang]["indexing"])
    request = payload["text"]
    conversation = threads.conversation(context, github_repo, place, payload, request, lang)
    # on a pull request: its head (the overlay) when indexed; else the base, with the PR's files boosted and a note
    overlay, note = pull_request_view(context, job, github_repo, config, lang) if payload["pull_request"] else (None, "")
    branch = overlay.base if overlay is not None else branch
    boost = changed_files(github_repo, payload["issue"]) if payload["pull_request"] and overlay is None else ()
    search_only = payload["command"] == "search"
    budget = monthly_budget(context.settings, context.runtime.spend, repo.installation)
    spent = budget if budget is not None and budget.exhausted and not search_only else None  # no generation
    with metering() as meter:
        try:
            result = answer(context.runtime, repo, branch, request, html_url=payload["html_url"],
                            boost_paths=boost, search_only=search_only or spent is not None, lang=lang,
                            tests=config.tests, overlay=overlay, conversation=conversation,
                            limit=MAX_REPLY_CHARS - FOOTER_RESERVE, commit_line=False)
        finally:
            record_meter(context.runtime.spend, repo.installation, meter)
    notes: list[str] = []
    if spent is not None:
        log.info("monthly budget reached; answering without generation", extra={"repo_id": repo.id})
        notes.append(REPLIES[lang]["budget"].format(limit=spent.limit_usd))
    if place.kind == "review_comment" and conversation.focus is None and asks_for_change(request):
        notes.append(REPLIES[lang]["no_lines"])
    log.info("answered from the thread", extra={"repo_id": repo.id, "turns": len(conversation.turns),
                                                "turns_dropped": conversation.dropped,
                                                "focus": conversation.focus is not None,
                                                "suggestion": result.suggested})
    notes += [note] if note else []  # which code of the pull request the answer is from
    return _answered(context, github_repo, repo, branch, place, request, result, lang, payload["html_url"], notes)


def _answered(context: Context, github_repo: Repository, repo: RepositoryId, branch: str, place: threads.Place,
              request: str, result: Answer, lang: str, html_url: str, notes: list[str]) -> Reply:
    """An answer with its notes first, then the commit it used and the index's freshness, the 👍/👎 invitation
    and the hidden marker that lets a follow-up in the thread find it."""
    if not result.commit:  # not answered from an index of this repository (it changed hands)
        return Reply("\n\n".join([*notes, result.markdown]))
    fresh = threads.freshness(context, github_repo, repo.id, branch, result.commit)
    marker = make_marker(repo.id, place.thread, place.comment, request, result.commit, result.hits)
    # a suggestion stays first, where GitHub shows its "Commit suggestion" button at the top of the reply
    parts = [result.markdown, *notes] if result.suggested else [*notes, result.markdown]
    body = "\n\n".join([*parts, footer(fresh, html_url, lang)])
    return Reply(f"{body}\n\n{marker}", answered=True)


def run_auto_answer(context: Context, job: Job) -> None:
    """A new issue in a repository with ``auto_answer: true``: the functions related to its title and body,
    without generation; nothing when the repository has none, is not indexed yet, or is over its rate limit."""
    payload = job.payload
    repo = job_repository(payload)
    extra = {"delivery": job.delivery, "job": job.id, "repo": repo.name, "repo_id": repo.id}
    config = _config(context, payload)
    if not config.auto_answer:
        return
    branch = payload["default_branch"]
    if context.runtime.store.branch_state(repo.id, branch) is None or context.queue.full_index_pending(repo.id):
        log.info("no automatic answer: the repository is not indexed yet", extra=extra)
        return
    github_repo = context.app.client(repo.installation).get_repo(repo.name)
    if github_repo.id != repo.id:
        return
    per_user, per_repo = config.rate_limit_per_hour, context.settings.repo_rate_limit_per_hour
    if not context.queue.record_command(repo.id, payload["user"], per_user=per_user, per_repo=per_repo):
        log.info("no automatic answer: rate limit reached for %s", payload["user"], extra=extra)
        return
    lang = config.options.summary_lang
    result = answer(context.runtime, repo, branch, payload["text"], html_url=payload["html_url"], search_only=True,
                    lang=lang, tests=config.tests, limit=MAX_REPLY_CHARS - FOOTER_RESERVE, commit_line=False)
    if not result.hits:
        log.info("no automatic answer: nothing relevant", extra=extra)
        return
    place = threads.Place("issue", int(payload["issue"]), None)
    reply = _answered(context, github_repo, repo, branch, place, payload["text"], result, lang, payload["html_url"],
                      [REPLIES[lang]["auto"]])
    posted = threads.post(github_repo, place, reply.body)
    remember_reply(context.queue, repo, place.reply_kind, posted, place.number, context.settings.feedback_days)
    log.info("answered a new issue automatically", extra=extra)


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
