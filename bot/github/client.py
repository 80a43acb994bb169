"""GitHub App access through PyGithub: App JWT → installation tokens, cached until shortly before expiry."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from github import Auth, Consts, Github, GithubException, GithubIntegration
from github.PaginatedList import PaginatedList
from github.Repository import Repository as GithubRepository

from bot.config import ConfigError, Settings

REFRESH_MARGIN = 300.0  # seconds before expiry at which a cached token is replaced


@dataclass(frozen=True)
class Token:
    """An installation access token and when it expires (epoch seconds)."""

    value: str
    expires_at: float


def private_key(settings: Settings) -> str:
    """The App's PEM private key from ``GITHUB_PRIVATE_KEY`` or ``GITHUB_PRIVATE_KEY_PATH``."""
    if settings.github_private_key.strip():
        return settings.github_private_key.replace("\\n", "\n")
    if settings.github_private_key_path:
        path = Path(settings.github_private_key_path).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"GITHUB_PRIVATE_KEY_PATH: cannot read {path} ({error.strerror})") from None
    raise ConfigError("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH: required by serve")


def check_app_settings(settings: Settings, *, webhook_secret: bool = True) -> None:
    """Fail with one clear line unless the webhook secret (when needed) and App credentials are usable."""
    if webhook_secret and not settings.github_webhook_secret:
        raise ConfigError("GITHUB_WEBHOOK_SECRET: required by serve")
    if not settings.github_app_id.strip():
        raise ConfigError("GITHUB_APP_ID: required by serve")
    key = private_key(settings)
    try:
        Auth.AppAuth(settings.github_app_id.strip(), key).create_jwt()
    except Exception:  # PyJWT and cryptography raise several types for a bad key
        raise ConfigError("GITHUB_PRIVATE_KEY: not a usable RSA private key in PEM format") from None


class GitHubApp:
    """The App's identity: installation tokens and PyGithub clients per installation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app_id = int(settings.github_app_id) if settings.github_app_id.strip().isdigit() else None
        self.base_url = settings.github_api_url.rstrip("/")
        self._auth = Auth.AppAuth(settings.github_app_id.strip(), private_key(settings))
        self._integration = GithubIntegration(auth=self._auth, base_url=self.base_url)
        self._tokens: dict[int, Token] = {}
        self._lock = threading.Lock()
        self._bot_login: str | None = None

    def token(self, installation_id: int) -> str:
        """A valid installation token, minted only when the cached one is missing or about to expire."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is None or cached.expires_at - REFRESH_MARGIN <= time.time():
                grant = self._integration.get_access_token(installation_id)
                cached = Token(grant.token, _epoch(grant.expires_at))
                self._tokens[installation_id] = cached
            return cached.value

    def bot_login(self) -> str:
        """The login of the App's bot user (``<slug>[bot]``), from ``GET /app`` once per process."""
        with self._lock:
            if self._bot_login is None:
                self._bot_login = f"{self._integration.get_app().slug}[bot]"
            return self._bot_login

    def jwt(self) -> str:
        """A fresh App JWT (for the ``/app`` endpoints: installations, webhook deliveries)."""
        return str(self._auth.create_jwt())

    def accessible_repository_ids(self, installation_id: int) -> set[int] | None:
        """Ids of the repositories the installation can read (``GET /installation/repositories``); None when
        the installation no longer exists. A fresh token is minted: a cached one may outlive the installation."""
        try:
            grant = self._integration.get_access_token(installation_id)
        except GithubException as error:
            if error.status != 404:
                raise
            with self._lock:
                self._tokens.pop(installation_id, None)
            return None
        client = Github(auth=Auth.Token(grant.token), base_url=self.base_url, lazy=True)
        repositories = PaginatedList(GithubRepository, client.requester, "/installation/repositories",
                                     {"per_page": 100}, list_item="repositories")
        return {repository.id for repository in repositories}

    def client(self, installation_id: int) -> Github:
        """A lazy PyGithub client acting as the installation."""
        return Github(
            auth=Auth.Token(self.token(installation_id)),
            base_url=self.base_url,
            lazy=True,
            seconds_between_requests=Consts.DEFAULT_SECONDS_BETWEEN_REQUESTS,
            seconds_between_writes=Consts.DEFAULT_SECONDS_BETWEEN_WRITES,
        )


def _epoch(when: datetime | None) -> float:
    return when.timestamp() if when is not None else time.time() + 3600
