"""Bare git mirrors of repositories under RAGCODE_HOME, fetched incrementally with the installation token."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import git

from bot.config import LimitExceeded


class MirrorError(RuntimeError):
    """A clone URL that is not allowed, or a fetch that failed."""


class MirrorTooLarge(MirrorError, LimitExceeded):
    """A repository over ``RAGCODE_MAX_REPO_MB``."""


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
    """One bare mirror per repository, named by its numeric id; one fetch at a time per mirror."""

    def __init__(self, root: Path, *, allow_file_urls: bool = False, timeout: float = 600.0,
                 max_bytes: int = 4 << 30) -> None:
        self.root = Path(root)
        self.allow_file_urls = allow_file_urls
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, repo_id: int) -> Path:
        """Where the mirror of the repository lives (a new repository under an old name never shares it)."""
        return self.root / f"{int(repo_id)}.git"

    def lock(self, repo_id: int) -> threading.Lock:
        """The lock that serializes fetches into the mirror of the repository."""
        with self._guard:
            return self._locks.setdefault(repo_id, threading.Lock())

    def open(self, repo_id: int) -> git.Repo | None:
        """The existing mirror of the repository, or None."""
        path = self.path(repo_id)
        return git.Repo(path) if (path / "HEAD").is_file() else None

    def remove(self, repo_id: int) -> None:
        """Delete the mirror of the repository (when the App loses access to it)."""
        with self.lock(repo_id):
            shutil.rmtree(self.path(repo_id), ignore_errors=True)

    def sync(self, repo_id: int, url: str, token: str | None, size_kb: int | None = None) -> git.Repo:
        """Create or update the mirror: git transfers only objects it does not have yet.

        A repository GitHub reports as larger than the limit is not fetched, a fetch is stopped after
        ``timeout`` seconds, and a mirror that ends up over the limit anyway is deleted.
        """
        check_url(url, self.allow_file_urls)
        if size_kb is not None and size_kb * 1024 > self.max_bytes:
            raise MirrorTooLarge(f"the repository is {size_kb // 1024} MB, more than RAGCODE_MAX_REPO_MB "
                              f"({self.max_bytes >> 20} MB); it is not indexed")
        path = self.path(repo_id)
        with self.lock(repo_id):
            mirror = self.open(repo_id) or git.Repo.init(path, bare=True, mkdir=True)
            self._fetch(repo_id, mirror, url, token, "+refs/heads/*:refs/heads/*", "--prune")
            return mirror

    def fetch_ref(self, repo_id: int, url: str, token: str | None, ref: str) -> git.Repo:
        """Fetch one ref (such as ``refs/pull/7/head``) into the mirror, creating it if needed: only that ref's
        missing objects are transferred, and the repository's size limit applies as in ``sync``."""
        check_url(url, self.allow_file_urls)
        with self.lock(repo_id):
            mirror = self.open(repo_id) or git.Repo.init(self.path(repo_id), bare=True, mkdir=True)
            self._fetch(repo_id, mirror, url, token, f"+{ref}:{ref}")
            return mirror

    def fetch_pull(self, repo_id: int, url: str, token: str | None, number: int) -> str:
        """Fetch pull request ``number``'s head (``refs/pull/N/head`` of the repository itself, where GitHub keeps
        the head of every pull request, forks' included) into the existing mirror; the head commit.

        A fork is never cloned: its commits come through the base repository, with the installation's token for it.
        """
        check_url(url, self.allow_file_urls)
        ref = f"refs/pull/{int(number)}/head"
        with self.lock(repo_id):
            mirror = self.open(repo_id)
            if mirror is None:
                raise MirrorError(f"repository {repo_id} has no mirror yet; sync it before fetching pull requests")
            self._fetch(repo_id, mirror, url, token, f"+{ref}:{ref}")
            return str(mirror.git.rev_parse("--verify", f"{ref}^{{commit}}"))

    def drop_pull(self, repo_id: int, number: int) -> None:
        """Forget a closed pull request's head in the mirror (its objects go with git's next garbage collection)."""
        with self.lock(repo_id):
            mirror = self.open(repo_id)
            if mirror is not None:
                with contextlib.suppress(git.GitCommandError):  # never fetched
                    mirror.git.update_ref("-d", f"refs/pull/{int(number)}/head")

    def _fetch(self, repo_id: int, mirror: git.Repo, url: str, token: str | None, *refspec: str) -> None:
        """``git fetch url refspec…`` within ``timeout``; a mirror that ends up over the limit is deleted."""
        env = {**os.environ, **auth_env(url, token)}
        env["GIT_ALLOW_PROTOCOL"] = "https:file" if self.allow_file_urls else "https"
        try:
            mirror.git.fetch(url, *refspec, "--no-tags", env=env, kill_after_timeout=self.timeout)
        except git.GitCommandError as error:
            message = (error.stderr or "").strip()
            raise MirrorError(f"git fetch of repository {repo_id} failed or took longer than "
                              f"RAGCODE_FETCH_TIMEOUT ({self.timeout:.0f} s): {message[-500:]}") from None
        path = self.path(repo_id)
        used = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
        if used > self.max_bytes:
            shutil.rmtree(path, ignore_errors=True)
            raise MirrorTooLarge(f"the repository takes {used >> 20} MB, more than RAGCODE_MAX_REPO_MB "
                                 f"({self.max_bytes >> 20} MB); it is not indexed")


def branch_head(mirror: git.Repo, branch: str) -> str | None:
    """The commit of ``branch`` in the mirror, or None when it does not exist."""
    try:
        return str(mirror.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
    except git.GitCommandError:
        return None


def pull_head(mirror: git.Repo, number: int) -> str | None:
    """The head of pull request ``number`` as last fetched into the mirror, or None."""
    try:
        return str(mirror.git.rev_parse("--verify", "--quiet", f"refs/pull/{int(number)}/head^{{commit}}"))
    except git.GitCommandError:
        return None
