"""Bare git mirrors of repositories under RAGCODE_HOME, fetched incrementally with the installation token."""

from __future__ import annotations

import base64
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import git

NAME = re.compile(r"\A[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")


class MirrorError(RuntimeError):
    """A clone URL that is not allowed, or a fetch that failed."""


def check_url(url: str, allow_file_urls: bool) -> str:
    """``url`` if it may be fetched: https, or file:// when RAGCODE_ALLOW_FILE_URLS=1."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "file" and allow_file_urls):
        return url
    if scheme == "file":
        raise MirrorError("file:// clone URLs need RAGCODE_ALLOW_FILE_URLS=1")
    raise MirrorError(f"clone URL scheme {scheme or '(none)'!r} is not allowed; use https")


def auth_env(url: str, token: str | None) -> dict[str, str]:
    """Environment that gives git the token as an HTTP header, never in argv or on disk."""
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if token and urlsplit(url).scheme.lower() == "https":
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    return env


class Mirrors:
    """One bare mirror per repository; one fetch at a time per mirror."""

    def __init__(self, root: Path, *, allow_file_urls: bool = False) -> None:
        self.root = Path(root)
        self.allow_file_urls = allow_file_urls
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, repo: str) -> Path:
        """Where the mirror of ``owner/name`` lives."""
        if not NAME.match(repo) or ".." in repo:
            raise MirrorError(f"not a repository name: {repo!r}")
        return self.root / f"{repo}.git"

    def lock(self, repo: str) -> threading.Lock:
        """The lock that serializes fetches into the mirror of ``repo``."""
        with self._guard:
            return self._locks.setdefault(repo, threading.Lock())

    def open(self, repo: str) -> git.Repo | None:
        """The existing mirror of ``repo``, or None."""
        path = self.path(repo)
        return git.Repo(path) if (path / "HEAD").is_file() else None

    def remove(self, repo: str) -> None:
        """Delete the mirror of ``repo`` (when the App loses access to it)."""
        with self.lock(repo):
            shutil.rmtree(self.path(repo), ignore_errors=True)

    def sync(self, repo: str, url: str, token: str | None) -> git.Repo:
        """Create or update the mirror: git transfers only objects it does not have yet."""
        check_url(url, self.allow_file_urls)
        path = self.path(repo)
        with self.lock(repo):
            mirror = self.open(repo) or git.Repo.init(path, bare=True, mkdir=True)
            env = {**os.environ, **auth_env(url, token)}
            env["GIT_ALLOW_PROTOCOL"] = "https:file" if self.allow_file_urls else "https"
            try:
                mirror.git.fetch(url, "+refs/heads/*:refs/heads/*", "--prune", "--no-tags", env=env)
            except git.GitCommandError as error:
                message = (error.stderr or "").strip()
                raise MirrorError(f"git fetch of {repo} failed: {message[-500:]}") from None
            return mirror


def branch_head(mirror: git.Repo, branch: str) -> str | None:
    """The commit of ``branch`` in the mirror, or None when it does not exist."""
    try:
        return str(mirror.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
    except git.GitCommandError:
        return None
