"""How far each indexed branch is behind its head, for the status page: the head from GitHub when the App can
reach it (bounded in calls and time, cached briefly), else from the local mirror as last fetched; the number
of commits from the mirror when it holds both commits.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import git
import httpx

from bot.documents import OVERLAY_PREFIX, BranchState, is_overlay
from bot.github.mirror import branch_head, pull_head

log = logging.getLogger("ragcode.freshness")

CACHE_SECONDS = 60.0  # a branch head read from GitHub is reused this long
MAX_CALLS = 40  # GitHub lookups one page may start (the rest show what the mirror or the cache knows)
DEADLINE = 6.0  # seconds one page waits for GitHub at most
CALL_TIMEOUT = 4.0
MAX_COUNT_SECONDS = 5.0  # a `git rev-list --count` in a mirror
PARALLEL = 4
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Head:
    """A branch head: its commit (None: unknown, or ``gone``), where it was read, and how many commits the
    index is behind it (None: unknown)."""

    commit: str | None = None
    source: str = ""  # github, mirror, or "" when unknown
    behind: int | None = None
    gone: bool = False  # GitHub says the branch no longer exists


TokenSource = Callable[[int], str]
Answer = tuple[str | None, bool]  # GitHub's answer about a branch: (head commit, gone)


class Freshness:
    """Branch heads for the status page; one per process (its cache is only a cache)."""

    def __init__(self, api_url: str, token: TokenSource | None, mirrors: Path, min_rate: int) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.mirrors = Path(mirrors)
        self.min_rate = min_rate
        self._cache: dict[tuple[int, str], tuple[float, Answer | None]] = {}  # None: GitHub did not say
        self._low: dict[int, float] = {}  # installation -> until when its rate limit is too low to use
        self._lock = threading.Lock()

    def heads(self, states: Sequence[BranchState]) -> dict[tuple[int, str], Head]:
        """The head of each branch of ``states`` (by repository id and branch), as far as can be known now."""
        now = time.monotonic()
        from_github: dict[tuple[int, str], Answer | None] = {}
        wanted: list[BranchState] = []
        with self._lock:
            for state in states:
                key = (state.repo_id, state.branch)
                cached = self._cache.get(key)
                if cached and now - cached[0] < CACHE_SECONDS:
                    from_github[key] = cached[1]
                elif self.token is not None and state.installation > 0 and len(wanted) < MAX_CALLS \
                        and self._low.get(state.installation, 0) <= now and not is_overlay(state.branch):
                    wanted.append(state)
        if wanted:
            from_github |= self._ask_github(wanted)
        return {(s.repo_id, s.branch): self._head(s, from_github.get((s.repo_id, s.branch))) for s in states}

    def _ask_github(self, states: Sequence[BranchState]) -> dict[tuple[int, str], Answer | None]:
        """``GET /repos/{repo}/branches/{branch}`` for each state, a few at a time, until the deadline; what
        GitHub answered (None: it did not say) is cached, so a branch it cannot tell about costs a call a minute."""
        found: dict[tuple[int, str], Answer | None] = {}
        with httpx.Client(timeout=CALL_TIMEOUT, follow_redirects=True, max_redirects=2, headers={
                "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}) as client:
            pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="ragcode-freshness")
            futures = {pool.submit(self._branch, client, state): state for state in states}
            done, _ = wait(futures, timeout=DEADLINE)
            pool.shutdown(wait=False, cancel_futures=True)
            for future in done:
                state = futures[future]
                try:
                    answer = future.result()
                except Exception as error:  # unreachable, rate-limited, a bad answer: that head stays unknown
                    log.info("branch head of %s@%s unknown: %s", state.repo, state.branch, type(error).__name__)
                    answer = None
                found[(state.repo_id, state.branch)] = answer
        now = time.monotonic()
        with self._lock:
            for key, answer in found.items():
                self._cache[key] = (now, answer)
        return found

    def _branch(self, client: httpx.Client, state: BranchState) -> Answer | None:
        """(head commit, gone) of one branch; None when GitHub did not say."""
        assert self.token is not None
        response = client.get(f"{self.api_url}/repos/{quote(state.repo, safe='/')}/branches/"
                              f"{quote(state.branch, safe='')}",
                              headers={"Authorization": f"Bearer {self.token(state.installation)}"})
        remaining = response.headers.get("x-ratelimit-remaining", "")
        if remaining.isdigit() and int(remaining) < self.min_rate:
            with self._lock:  # leave the rest of this installation's requests to indexing and reconcile
                self._low[state.installation] = time.monotonic() + CACHE_SECONDS
        if response.status_code == 404:  # "Branch not found"; a repository we cannot see says "Not Found"
            return (None, True) if response.json().get("message") == "Branch not found" else None
        if response.status_code != 200:
            return None
        commit = response.json().get("commit", {}).get("sha")
        return (commit, False) if isinstance(commit, str) and _SHA.fullmatch(commit) else None

    def _head(self, state: BranchState, github: Answer | None) -> Head:
        mirror = self._mirror(state.repo_id)
        if github is not None and github[1]:
            return Head(None, "github", None, gone=True)
        commit, source = (github[0], "github") if github is not None else (None, "")
        if commit is None and mirror is not None:  # a pull request overlay: the head its last run fetched
            commit = (pull_head(mirror, int(state.branch.removeprefix(OVERLAY_PREFIX))) if is_overlay(state.branch)
                      else branch_head(mirror, state.branch))
            source = "mirror"
        if commit is None:
            return Head()
        if commit == state.commit:
            return Head(commit, source, 0)
        return Head(commit, source, commits_between(mirror, state.commit, commit) if mirror is not None else None)

    def _mirror(self, repo_id: int) -> git.Repo | None:
        path = self.mirrors / f"{int(repo_id)}.git"
        try:
            return git.Repo(path) if (path / "HEAD").is_file() else None
        except git.GitError:
            return None


def commits_between(mirror: git.Repo, indexed: str, head: str) -> int | None:
    """Commits reachable from ``head`` and not from ``indexed``; None when the mirror lacks either."""
    if not (_SHA.fullmatch(indexed) and _SHA.fullmatch(head)):
        return None
    try:
        return int(mirror.git.rev_list("--count", f"{indexed}..{head}", kill_after_timeout=MAX_COUNT_SECONDS))
    except (git.GitCommandError, ValueError):
        return None
