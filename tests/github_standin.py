"""A recording stand-in for the GitHub REST API on 127.0.0.1, strict about auth and the OpenAPI description."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import git
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from tests.shared_data import DATA as SHARED_DATA

SPEC_PATH = SHARED_DATA / "github-openapi" / "api.github.com.subset.json"
PREFIX = "/api/v3"  # served like GitHub Enterprise Server, so GITHUB_API_URL with a path is exercised
MAX_COMMENT_CHARS = 65_536  # GitHub answers 422 "body is too long (maximum is 65536 characters)" above this
APP_BOT = "ragcode[bot]"  # the App's bot user: GET /app answers with the slug "ragcode"
_openapi: OpenAPI | None = None
_openapi_lock = threading.Lock()


def openapi() -> OpenAPI:
    """The parsed OpenAPI subset (parsed once per test session)."""
    global _openapi
    with _openapi_lock:
        if _openapi is None:
            _openapi = OpenAPI.from_dict(json.loads(SPEC_PATH.read_text()))
        return _openapi


APP_ID = 4711  # the App every test installs


def generate_private_key() -> tuple[str, str]:
    """A fresh RSA key pair as PEM strings (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    auth: str  # "app", "installation:<id>" or "none"


@dataclass
class Pull:
    """A pull request the stand-in knows; its head is ``refs/pull/N/head`` of the repository, as on GitHub."""

    number: int
    head_sha: str
    head_ref: str
    base_ref: str = "main"
    state: str = "open"
    fork: bool = False  # the head branch lives in a fork of the repository
    merged: bool = False


@dataclass
class Repo:
    """A repository the stand-in knows."""

    full_name: str
    clone_url: str
    default_branch: str = "main"
    id: int = 0
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role
    pull_files: dict[int, list[str]] = field(default_factory=dict)
    installations: set[int] = field(default_factory=set)  # installations that can read it (empty: any)
    pulls: dict[int, Pull] = field(default_factory=dict)

    @property
    def html_url(self) -> str:
        """Web address used in permalinks."""
        return f"https://github.example/{self.full_name}"


class GitHubStandIn:
    """Real HTTP on loopback: verifies App JWTs and installation tokens, validates requests, records them."""

    def __init__(self, app_id: int, public_key: str, *, token_ttl: float = 3600.0) -> None:
        self.app_id = app_id
        self.public_key = public_key
        self.token_ttl = token_ttl
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self.tokens: dict[str, tuple[int, float]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.check_run_history: dict[int, list[dict[str, Any]]] = {}
        self.comments: list[dict[str, Any]] = []  # issue and pull-request conversation comments, everyone's
        self.review_comments: list[dict[str, Any]] = []  # pull-request review comments, everyone's
        self.reactions: list[dict[str, Any]] = []
        self.deleted_installations: set[int] = set()
        self.refuse_comments: list[str] = []  # the next comment posts get 422 with these messages, in order
        self.installations: set[int] = set()  # listed by GET /app/installations
        self.hook_deliveries: list[dict[str, Any]] = []  # GET /app/hook/deliveries, newest first
        self.redelivered: list[int] = []  # delivery ids POSTed to /app/hook/deliveries/{id}/attempts
        self.rate_limit = 5000  # requests per credential (the App JWT, each installation)
        self.rate_used: dict[str, int] = {}
        self.listed_pages: list[int] = []  # pages of comment listings served, in order
        self.lock = threading.Lock()
        self._ids = itertools.count(1000)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        openapi()

    @property
    def url(self) -> str:
        """The ``GITHUB_API_URL`` of the stand-in."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    def start(self) -> GitHubStandIn:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, full_name: str, clone_url: str, default_branch: str = "main", **permissions: str) -> Repo:
        """Make a repository known, with collaborator roles by login."""
        repo = Repo(full_name, clone_url, default_branch, next(self._ids), dict(permissions))
        self.repos[full_name] = repo
        return repo

    def open_pull(self, repo: Repo, number: int, head_sha: str, *, head_ref: str = "feature", base: str = "main",
                  fork: bool = False) -> Pull:
        """A pull request is opened (or pushed to): GitHub points ``refs/pull/N/head`` of the repository at its head,
        whether the head branch is the repository's own or a fork's."""
        _set_ref(repo, f"refs/pull/{number}/head", head_sha)
        with self.lock:
            pull = Pull(number, head_sha, head_ref, base, "open", fork)
            repo.pulls[number] = pull
        return pull

    def close_pull(self, repo: Repo, number: int, *, merged: bool = False) -> None:
        """A pull request is closed (merged or not); GitHub keeps its ``refs/pull/N/head``."""
        with self.lock:
            repo.pulls[number].state = "closed"
            repo.pulls[number].merged = merged

    def delete_repo(self, full_name: str) -> None:
        """The repository is deleted: its name answers 404 (until someone creates it again)."""
        with self.lock:
            self.repos.pop(full_name)

    def revoke(self, repo: Repo, installation: int) -> None:
        """The installation loses access to the repository."""
        with self.lock:
            repo.installations = {i for i in (repo.installations or {installation}) if i != installation} or {-1}

    def recorded(self, method: str, pattern: str) -> list[Recorded]:
        """Recorded requests whose method matches and whose path matches the regex ``pattern``."""
        with self.lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def checks_for(self, full_name: str) -> list[dict[str, Any]]:
        """Check runs created in a repository, oldest first."""
        with self.lock:
            return [run for run in self.check_runs.values() if run["repo"] == full_name]

    def comments_on(self, full_name: str, issue: int) -> list[dict[str, Any]]:
        """Comments the App posted on an issue, oldest first."""
        with self.lock:
            return [c for c in self.comments if c["repo"] == full_name and c["issue"] == issue
                    and c["user"]["login"] == APP_BOT]

    def replies_in(self, full_name: str, root: int) -> list[dict[str, Any]]:
        """Review comments the App posted in the review thread that starts with comment ``root``, oldest first."""
        with self.lock:
            return [c for c in self.review_comments if c["repo"] == full_name and c.get("in_reply_to_id") == root
                    and c["user"]["login"] == APP_BOT]

    def add_comment(self, full_name: str, issue: int, body: str, *, login: str = "octocat", kind: str = "User",
                    comment_id: int | None = None) -> dict[str, Any]:
        """A comment someone wrote on an issue or pull request (as GitHub has it when the webhook arrives)."""
        repo = self.repos[full_name]
        number = comment_id or next(self._ids)
        comment = {"id": number, "node_id": "IC", "repo": full_name, "issue": issue, "body": body,
                   "url": f"{self.url}/repos/{full_name}/issues/comments/{number}",
                   "html_url": f"{repo.html_url}/issues/{issue}#issuecomment-{number}",
                   "issue_url": f"{self.url}/repos/{full_name}/issues/{issue}", "user": _user(login, kind),
                   "created_at": _now(), "updated_at": _now(), "author_association": "MEMBER"}
        with self.lock:
            self.comments.append(comment)
        return comment

    def add_review_comment(self, full_name: str, pull: int, body: str, *, path: str, line: int | None,
                           start_line: int | None = None, side: str = "RIGHT", commit_id: str = "0" * 40,
                           login: str = "octocat", kind: str = "User", comment_id: int | None = None,
                           in_reply_to: int | None = None) -> dict[str, Any]:
        """A review comment someone wrote on lines of a pull request's diff."""
        repo = self.repos[full_name]
        number = comment_id or next(self._ids)
        comment = {"id": number, "node_id": "PRRC", "repo": full_name, "pull": pull, "body": body, "path": path,
                   "line": line, "start_line": start_line, "side": side, "start_side": side if start_line else None,
                   "commit_id": commit_id, "original_commit_id": commit_id, "diff_hunk": "@@ -1 +1 @@",
                   "position": 1, "original_position": 1, "pull_request_review_id": 1,
                   "url": f"{self.url}/repos/{full_name}/pulls/comments/{number}",
                   "html_url": f"{repo.html_url}/pull/{pull}#discussion_r{number}",
                   "pull_request_url": f"{self.url}/repos/{full_name}/pulls/{pull}", "user": _user(login, kind),
                   "created_at": _now(), "updated_at": _now(), "author_association": "MEMBER",
                   "_links": {"self": {"href": ""}, "html": {"href": ""}, "pull_request": {"href": ""}}}
        if in_reply_to is not None:
            comment["in_reply_to_id"] = in_reply_to
        with self.lock:
            self.review_comments.append(comment)
        return comment

    def react(self, full_name: str, comment_id: int, content: str, *, login: str = "octocat", kind: str = "User",
              on: str = "issue_comment") -> dict[str, Any]:
        """Someone reacts to a comment (``on``: ``issue_comment`` or ``review_comment``)."""
        reaction = {"id": next(self._ids), "node_id": "REA", "repo": full_name, "comment": comment_id, "kind": on,
                    "content": content, "user": _user(login, kind), "created_at": _now()}
        with self.lock:
            self.reactions.append(reaction)
        return reaction

    def _summary(self, comment_id: int) -> dict[str, Any]:
        """The ``reactions`` summary GitHub gives with a review comment (the lock is held)."""
        counts = {content: 0 for content in ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")}
        for reaction in self.reactions:
            if reaction["comment"] == comment_id and reaction.get("kind") == "review_comment":
                counts[reaction["content"]] += 1
        return {"url": "", "total_count": sum(counts.values()), **counts}

    # request handling

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, Any]:
        """Authenticate, validate against the OpenAPI description, record and answer one request."""
        parts = urlsplit(raw_path)
        if not parts.path.startswith(PREFIX + "/"):
            return self._error(404, f"{method} {raw_path}: outside {PREFIX}")
        path = parts.path[len(PREFIX):]
        query = dict(parse_qsl(parts.query))
        try:
            body = json.loads(raw_body) if raw_body else None
        except json.JSONDecodeError:
            return self._error(400, f"{method} {path}: body is not JSON")
        auth = self._authenticate(path, headers.get("authorization", ""))
        with self.lock:
            self.requests.append(Recorded(method, path, query, body, auth or "none"))
        if auth is None:
            return self._error(401, f"{method} {path}: bad credentials")
        key = "app" if auth == "app" else auth
        with self.lock:
            if self.rate_used.get(key, 0) >= self.rate_limit:
                return 403, {"message": f"API rate limit exceeded for {key}.",
                             "documentation_url": "https://docs.github.com/rest/rate-limit"}
            self.rate_used[key] = self.rate_used.get(key, 0) + 1
        request = MockRequest("https://api.github.com", method.lower(), path, args=query,
                              data=raw_body or None, content_type="application/json" if raw_body else None)
        try:
            openapi().validate_request(request)
        except Exception as error:  # openapi-core raises one class per kind of mismatch
            return self._error(422, f"{method} {path}: {type(error).__name__}: {error}")
        return self._route(method, path, body, auth, query)

    def _error(self, status: int, message: str) -> tuple[int, Any]:
        with self.lock:
            self.errors.append(message)
        return status, {"message": message, "documentation_url": "https://docs.github.com/rest"}

    def _invalid(self, resource: str, field_name: str, message: str) -> tuple[int, Any]:
        """GitHub's 422 body (the OpenAPI ``validation-error`` schema) for one invalid field."""
        return 422, {"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                     "errors": [{"resource": resource, "code": "custom", "field": field_name, "message": message}]}

    def rate_headers(self, header: str, path: str) -> dict[str, str]:
        """``X-RateLimit-*`` headers for the credential of a request (as GitHub sends on every answer)."""
        auth = self._authenticate(urlsplit(path).path[len(PREFIX):], header)
        if auth is None:
            return {}
        with self.lock:
            used = self.rate_used.get(auth, 0)
        return {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
                "X-RateLimit-Used": str(used), "X-RateLimit-Reset": str(int(time.time()) + 3600),
                "X-RateLimit-Resource": "core"}

    def _authenticate(self, path: str, header: str) -> str | None:
        scheme, _, credential = header.partition(" ")
        if path.startswith("/app"):
            if scheme.lower() != "bearer":
                return None
            try:
                claims = jwt.decode(credential, self.public_key, algorithms=["RS256"],
                                    options={"require": ["iat", "exp", "iss"]}, leeway=5)
            except jwt.PyJWTError:
                return None
            ok = str(claims["iss"]) == str(self.app_id) and claims["exp"] - claims["iat"] <= 660
            return "app" if ok else None
        if scheme.lower() not in ("token", "bearer"):
            return None
        grant = self.tokens.get(credential)
        if grant is None or grant[1] <= time.time() or grant[0] in self.deleted_installations:
            return None
        return f"installation:{grant[0]}"

    def _route(self, method: str, path: str, body: Any, auth: str, query: dict[str, str]) -> tuple[int, Any]:
        if method == "GET" and path == "/app":
            return 200, {"id": self.app_id, "slug": "ragcode", "name": "ragcode", "owner": None,
                         "node_id": "A_1", "description": "", "external_url": "", "html_url": "",
                         "created_at": _now(), "updated_at": _now(), "permissions": {}, "events": []}
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if method == "POST" and match and int(match[1]) in self.deleted_installations:
            # GitHub's answer for an uninstalled App: expected by the App, so not recorded as a client error
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        if method == "POST" and match:
            token = "ghs_" + secrets.token_hex(18)
            expires = time.time() + self.token_ttl
            with self.lock:
                self.tokens[token] = (int(match[1]), expires)
            return 201, {"token": token, "expires_at": _iso(expires), "permissions": {"contents": "read"},
                         "repository_selection": "all"}
        if method == "GET" and path == "/app/installations":
            with self.lock:
                listed = sorted(self.installations)
            return 200, [_installation(number, self.url) for number in listed]
        if method == "GET" and path == "/app/hook/deliveries":
            with self.lock:
                return 200, list(self.hook_deliveries)
        match = re.fullmatch(r"/app/hook/deliveries/(\d+)/attempts", path)
        if method == "POST" and match:
            with self.lock:
                known = any(d["id"] == int(match[1]) for d in self.hook_deliveries)
                if known:
                    self.redelivered.append(int(match[1]))
            return (202, {}) if known else self._error(404, f"no delivery {match[1]}")
        if method == "GET" and path == "/installation/repositories":
            installation = int(auth.split(":")[1])
            with self.lock:
                visible = [r for r in self.repos.values() if not r.installations or installation in r.installations]
            return 200, {"total_count": len(visible), "repository_selection": "selected",
                         "repositories": [_repository(r, self.url) for r in visible]}
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not match or match[1] not in self.repos:
            return self._error(404, f"{method} {path}: unknown repository")
        return self._repo_route(method, self.repos[match[1]], match[2] or "", body, query)

    def _repo_route(self, method: str, repo: Repo, rest: str, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        base = f"{self.url}/repos/{repo.full_name}"
        if method == "GET" and rest == "":
            return 200, _repository(repo, self.url)
        if method == "POST" and rest == "/check-runs":
            run_id = next(self._ids)
            run = {"id": run_id, "repo": repo.full_name, "url": f"{base}/check-runs/{run_id}", "node_id": "CR",
                   "conclusion": None, "html_url": f"{repo.html_url}/runs/{run_id}", **body}
            with self.lock:
                self.check_runs[run_id] = run
                self.check_run_history[run_id] = [dict(body)]
            return 201, run
        match = re.fullmatch(r"/branches/([^/]+)", rest)
        if method == "GET" and match:
            head = _branch_head(repo, unquote(match[1]))
            if head is None:
                return 404, {"message": "Branch not found", "documentation_url": "https://docs.github.com/rest"}
            return 200, {"name": unquote(match[1]), "protected": False, "_links": {"self": "", "html": ""},
                         "protection_url": "", "commit": {"sha": head, "url": f"{base}/commits/{head}"}}
        match = re.fullmatch(r"/check-runs/(\d+)", rest)
        if method == "GET" and match and int(match[1]) in self.check_runs:
            with self.lock:
                return 200, dict(self.check_runs[int(match[1])])
        if method == "PATCH" and match and int(match[1]) in self.check_runs:
            with self.lock:
                run = self.check_runs[int(match[1])]
                run.update(body)
                self.check_run_history[run["id"]].append(dict(body))
            return 200, run
        match = re.fullmatch(r"/collaborators/([^/]+)/permission", rest)
        if method == "GET" and match:
            role = repo.permissions.get(match[1], "none")
            legacy = {"maintain": "write", "triage": "read"}.get(role, role)
            return 200, {"permission": legacy, "role_name": role, "user": _user(match[1])}
        match = re.fullmatch(r"/issues/(\d+)", rest)
        if method == "GET" and match:
            number = int(match[1])
            with self.lock:
                count = sum(1 for c in self.comments if c["repo"] == repo.full_name and c["issue"] == number)
            return 200, {"id": number, "node_id": "I", "number": number, "title": "An issue", "state": "open",
                         "body": "", "comments": count, "user": _user("octocat"), "labels": [], "locked": False,
                         "url": f"{base}/issues/{number}", "html_url": f"{repo.html_url}/issues/{number}",
                         "created_at": _now(), "updated_at": _now()}
        match = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if method == "GET" and match:
            number, per_page, page = int(match[1]), int(query.get("per_page", 30)), int(query.get("page", 1))
            with self.lock:
                listed = [c for c in self.comments if c["repo"] == repo.full_name and c["issue"] == number]
                self.listed_pages.append(page)
            return 200, listed[(page - 1) * per_page: page * per_page]
        if method == "POST" and match and len(body["body"]) > MAX_COMMENT_CHARS:
            self._error(422, f"POST {rest}: comment body of {len(body['body'])} characters")
            return self._invalid("IssueComment", "body", f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)")
        if method == "POST" and match and self.refuse_comments:
            with self.lock:
                message = self.refuse_comments.pop(0)
            return self._invalid("IssueComment", "body", message)
        if method == "POST" and match:
            comment_id = next(self._ids)
            comment = {"id": comment_id, "repo": repo.full_name, "issue": int(match[1]), "body": body["body"],
                       "url": f"{base}/issues/comments/{comment_id}", "user": _user(APP_BOT, "Bot"),
                       "html_url": f"{repo.html_url}/issues/{match[1]}#issuecomment-{comment_id}",
                       "created_at": _now(), "updated_at": _now()}
            with self.lock:
                self.comments.append(comment)
            return 201, comment
        match = re.fullmatch(r"/(issues|pulls)/comments/(\d+)/reactions", rest)
        if method == "POST" and match:
            kind = "issue_comment" if match[1] == "issues" else "review_comment"
            reaction = {"id": next(self._ids), "repo": repo.full_name, "comment": int(match[2]), "kind": kind,
                        "content": body["content"], "user": _user(APP_BOT, "Bot"), "created_at": _now()}
            with self.lock:
                self.reactions.append(reaction)
            return 201, reaction
        if method == "GET" and match and match[1] == "issues":
            per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
            with self.lock:
                given = [{k: v for k, v in r.items() if k not in ("repo", "comment", "kind")} for r in self.reactions
                         if r["repo"] == repo.full_name and r["comment"] == int(match[2]) and r["kind"] == "issue_comment"]
            return 200, given[(page - 1) * per_page: page * per_page]
        match = re.fullmatch(r"/pulls/(\d+)/comments/(\d+)/replies", rest)
        if method == "POST" and match:
            with self.lock:
                target = next((c for c in self.review_comments if c["id"] == int(match[2])
                               and c["repo"] == repo.full_name and c["pull"] == int(match[1])), None)
            if target is None:
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            if len(body["body"]) > MAX_COMMENT_CHARS:
                self._error(422, f"POST {rest}: comment body of {len(body['body'])} characters")
                return self._invalid("PullRequestReviewComment", "body",
                                     f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)")
            reply = self.add_review_comment(repo.full_name, int(match[1]), body["body"], path=target["path"],
                                            line=target["line"], start_line=target["start_line"], side=target["side"],
                                            commit_id=target["commit_id"], login=APP_BOT, kind="Bot",
                                            in_reply_to=target.get("in_reply_to_id") or target["id"])
            return 201, _public(reply)
        match = re.fullmatch(r"/pulls/(\d+)/comments", rest)
        if method == "GET" and match:
            per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
            with self.lock:
                listed = [c for c in self.review_comments if c["repo"] == repo.full_name and c["pull"] == int(match[1])]
                if query.get("sort") == "created" and query.get("direction") == "desc":
                    listed.reverse()
                listed = [_public(c) | {"reactions": self._summary(c["id"])} for c in listed]
                self.listed_pages.append(page)
            return 200, listed[(page - 1) * per_page: page * per_page]
        match = re.fullmatch(r"/pulls/(\d+)", rest)
        if method == "GET" and match:
            with self.lock:
                pull = repo.pulls.get(int(match[1]))
            if pull is None:
                return self._error(404, f"GET {rest}: no such pull request")
            return 200, _pull_request(repo, pull, self.url)
        match = re.fullmatch(r"/pulls/(\d+)/files", rest)
        if method == "GET" and match:
            files = repo.pull_files.get(int(match[1]), [])
            return 200, [{"sha": "0" * 40, "filename": name, "status": "modified", "additions": 1, "deletions": 0,
                          "changes": 1, "blob_url": "", "raw_url": "", "contents_url": ""} for name in files]
        return self._error(404, f"{method} {rest}: not served by the stand-in")


def _handler(standin: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:  # the client went away mid-request (a killed worker): nothing to answer
                self.close_connection = True
                return
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, payload = standin.handle(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in standin.rate_headers(headers.get("authorization", ""), self.path).items():
                self.send_header(key, value)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _repository(repo: Repo, api_url: str) -> dict[str, Any]:
    owner, name = repo.full_name.split("/")
    return {"id": repo.id, "node_id": f"R_{repo.id}", "name": name, "full_name": repo.full_name,
            "private": True, "owner": _user(owner, "Organization"), "html_url": repo.html_url,
            "url": f"{api_url}/repos/{repo.full_name}", "clone_url": repo.clone_url,
            "default_branch": repo.default_branch}


def _pull_request(repo: Repo, pull: Pull, api_url: str) -> dict[str, Any]:
    """``GET /repos/{o}/{r}/pulls/{n}``: the OpenAPI description's example pull request, made this one."""
    body = json.loads(json.dumps(_pull_example()))
    owner, name = repo.full_name.split("/")
    base_repo = {**body["base"]["repo"], "id": repo.id, "name": name, "full_name": repo.full_name,
                 "html_url": repo.html_url, "clone_url": repo.clone_url, "url": f"{api_url}/repos/{repo.full_name}",
                 "default_branch": repo.default_branch, "fork": False}
    base_repo["owner"] = {**base_repo["owner"], "login": owner}
    head_repo = dict(base_repo)
    if pull.fork:  # another repository: another id, owner and name
        head_repo.update(id=repo.id + 1_000_000, full_name=f"forker/{name}", fork=True,
                         html_url=f"https://github.example/forker/{name}", clone_url=f"https://github.example/forker/{name}.git",
                         url=f"{api_url}/repos/forker/{name}", owner={**base_repo["owner"], "login": "forker"})
    base_sha = _branch_head(repo, pull.base_ref) or pull.head_sha
    # no reviewers requested: GitHub's example names a team without the "type" its own schema requires
    body.update(number=pull.number, state=pull.state, merged=pull.merged, html_url=f"{repo.html_url}/pull/{pull.number}",
                url=f"{api_url}/repos/{repo.full_name}/pulls/{pull.number}", draft=False, locked=False,
                requested_teams=[], requested_reviewers=[])
    body["head"].update(ref=pull.head_ref, sha=pull.head_sha, repo=head_repo,
                        label=f"{head_repo['owner']['login']}:{pull.head_ref}")
    body["base"].update(ref=pull.base_ref, sha=base_sha, repo=base_repo, label=f"{owner}:{pull.base_ref}")
    return body


_PULL_EXAMPLE: dict[str, Any] = {}


def _pull_example() -> dict[str, Any]:
    if not _PULL_EXAMPLE:
        _PULL_EXAMPLE.update(json.loads(SPEC_PATH.read_text())["components"]["examples"]["pull-request"]["value"])
    return _PULL_EXAMPLE


def _set_ref(repo: Repo, ref: str, sha: str) -> None:
    """Point ``ref`` of the repository's (file://) clone URL at ``sha``."""
    git.Repo(repo.clone_url.removeprefix("file://")).git.update_ref(ref, sha)


def _branch_head(repo: Repo, branch: str) -> str | None:
    """The head of ``branch`` in the repository's (file://) clone URL, or None."""
    try:
        return str(git.Repo(repo.clone_url.removeprefix("file://")).heads[branch].commit.hexsha)
    except (IndexError, git.GitError, OSError):
        return None


def _installation(number: int, api_url: str) -> dict[str, Any]:
    return {"id": number, "account": _user("acme", "Organization"), "access_tokens_url":
            f"{api_url}/app/installations/{number}/access_tokens", "repositories_url": f"{api_url}/installation/repositories",
            "html_url": f"https://github.example/settings/installations/{number}", "app_id": 1, "target_id": 1,
            "target_type": "Organization", "permissions": {"contents": "read"}, "events": ["push"],
            "created_at": _now(), "updated_at": _now(), "single_file_name": None, "app_slug": "ragcode",
            "suspended_by": None, "suspended_at": None, "repository_selection": "selected"}


def hook_delivery(number: int, guid: str, status_code: int, event: str = "push", age: float = 60.0) -> dict[str, Any]:
    """An entry of ``GET /app/hook/deliveries``."""
    return {"id": number, "guid": guid, "delivered_at": _iso(time.time() - age), "redelivery": False,
            "duration": 0.3, "status": "OK" if 200 <= status_code < 300 else "failed to connect",
            "status_code": status_code, "event": event, "action": None, "installation_id": 1, "repository_id": 1}


def _public(comment: dict[str, Any]) -> dict[str, Any]:
    """A stored comment as the API shows it (without the stand-in's bookkeeping)."""
    return {key: value for key, value in comment.items() if key not in ("repo", "pull", "issue")}


def _user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**8, "node_id": "U", "type": kind, "site_admin": False,
            "url": f"https://api.github.example/users/{login}", "html_url": f"https://github.example/{login}"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(time.time())


# deliveries, built from the real example payloads

WEBHOOKS = SHARED_DATA / "github-webhooks"


def example(name: str) -> dict[str, Any]:
    """A real example payload, e.g. ``push/with-new-branch``."""
    return json.loads((WEBHOOKS / f"{name}.json").read_text())


def with_repository(payload: dict[str, Any], repo: Repo, installation: int) -> dict[str, Any]:
    """``payload`` moved to ``repo`` (names, clone URL, default branch) and to ``installation``."""
    owner, name = repo.full_name.split("/")
    payload = json.loads(json.dumps(payload))
    if "repository" in payload:
        payload["repository"].update(
            id=repo.id, name=name, full_name=repo.full_name, clone_url=repo.clone_url, html_url=repo.html_url,
            default_branch=repo.default_branch, master_branch=repo.default_branch,
        )
        payload["repository"]["owner"]["login"] = owner
    payload["installation"] = {"id": installation, "node_id": "I"}
    return payload


def push_payload(repo: Repo, installation: int, branch: str, before: str, after: str, **changes: Any) -> dict:
    """A push of ``branch`` from ``before`` to ``after`` (from the real ``push/with-new-branch`` example)."""
    payload = with_repository(example("push/with-new-branch"), repo, installation)
    payload.update(ref=f"refs/heads/{branch}", before=before, after=after, created=before == "0" * 40,
                   deleted=after == "0" * 40, forced=False)
    payload.update(changes)
    return payload


def comment_payload(repo: Repo, installation: int, body: str, *, login: str = "octocat", user_type: str = "User",
                    issue: int = 1, pull_request: bool = False, comment_id: int = 4242) -> dict:
    """A new issue (or pull request) comment (from the real ``issue_comment/created.with-installation``)."""
    payload = with_repository(example("issue_comment/created.with-installation"), repo, installation)
    payload["comment"].update(id=comment_id, body=body)
    payload["comment"]["user"].update(login=login, type=user_type)
    payload["issue"]["number"] = issue
    if pull_request:
        payload["issue"]["pull_request"] = {"url": f"https://api.github.example/repos/{repo.full_name}/pulls/{issue}"}
    return payload


def pull_request_payload(repo: Repo, installation: int, action: str, pull: Pull, before: str | None = None) -> dict:
    """A ``pull_request`` delivery for ``pull`` of ``repo``, from the real ``pull_request/<action>`` example (the
    ``opened`` one for actions without an example, such as ``reopened``; ``synchronize`` has ``before`` and
    ``after``)."""
    known = (WEBHOOKS / "pull_request" / f"{action}.json").is_file()
    payload = with_repository(example(f"pull_request/{action if known else 'opened'}"), repo, installation)
    payload["action"] = action
    payload["number"] = pull.number
    body = payload["pull_request"]
    body.update(number=pull.number, state=pull.state, merged=pull.merged)
    body["head"].update(ref=pull.head_ref, sha=pull.head_sha)
    body["base"].update(ref=pull.base_ref)
    owner, name = repo.full_name.split("/")
    for side in ("head", "base"):
        body[side]["repo"].update(id=repo.id, name=name, full_name=repo.full_name, fork=False)
    if pull.fork:
        body["head"]["repo"].update(id=repo.id + 1_000_000, full_name=f"forker/{name}", fork=True)
    if action == "synchronize":
        payload.update(before=before or "0" * 40, after=pull.head_sha)
    return payload


def installation_payload(repos: list[Repo], installation: int) -> dict:
    """``installation.created`` for ``repos`` (from the real example)."""
    payload = example("installation/created")
    payload["installation"]["id"] = installation
    payload["repositories"] = [{"id": r.id, "node_id": "R", "name": r.full_name.split("/")[1],
                                "full_name": r.full_name, "private": True} for r in repos]
    return payload


def repository_payload(repo: Repo, installation: int, action: str, **changes: Any) -> dict:
    """A ``repository`` event (renamed, deleted, transferred) built from the repository object of a real example;
    the octokit examples have none of this event, so tests check it against ``repository$<action>`` in the schema."""
    base = with_repository(example("issue_comment/created.with-installation"), repo, installation)
    payload: dict[str, Any] = {"action": action, "repository": base["repository"], "sender": base["sender"],
                               "installation": base["installation"]}
    if changes:
        payload["changes"] = changes
    return payload


def issue_payload(repo: Repo, installation: int, body: str | None, *, title: str = "A question", number: int = 1,
                  login: str = "octocat", user_type: str = "User") -> dict:
    """A new issue (from the real ``issues/opened`` example)."""
    payload = with_repository(example("issues/opened"), repo, installation)
    payload["issue"].update(number=number, title=title, body=body)
    payload["issue"]["user"].update(login=login, type=user_type)
    return payload


def review_comment_payload(repo: Repo, installation: int, comment: dict[str, Any], *, head: str, base: str,
                           pull: int = 7) -> dict:
    """A new review comment (from the real ``pull_request_review_comment/created`` example) carrying ``comment``
    as the stand-in stored it (``add_review_comment``)."""
    payload = with_repository(example("pull_request_review_comment/created"), repo, installation)
    payload["comment"].update(_public(comment))
    payload["comment"].pop("in_reply_to_id", None)
    if comment.get("in_reply_to_id"):
        payload["comment"]["in_reply_to_id"] = comment["in_reply_to_id"]
    payload["pull_request"]["number"] = pull
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = base
    return payload
