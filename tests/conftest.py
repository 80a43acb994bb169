"""Shared fixtures: real git repositories on disk, a runtime over a temporary RAGCODE_HOME, the Bedrock and GitHub
stand-ins."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest

from bot.config import Settings
from bot.runtime import Runtime
from tests.bedrock_standin import BedrockStandin, RegionConfig
from tests.github_standin import APP_ID, GitHubStandIn, generate_private_key

StartStandin = Callable[..., BedrockStandin]


@pytest.fixture(autouse=True, scope="session")
def _private_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test, nor any process it starts, touches the real per-user data folder: the default one (and
    where platformdirs finds it) lives in a temporary folder for the whole run."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


class GitRepo:
    """A real git repository in a temporary folder, written to file by file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Test User")
            config.set_value("user", "email", "test@example.com")

    def write(self, relative: str, text: str | bytes) -> None:
        """Create or overwrite a file."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")

    def remove(self, relative: str) -> None:
        """Delete a file."""
        (self.path / relative).unlink()

    def move(self, source: str, target: str) -> None:
        """Rename a file with git mv."""
        (self.path / target).parent.mkdir(parents=True, exist_ok=True)
        self.repo.git.mv(source, target)

    def commit(self, message: str = "change") -> str:
        """Stage everything and commit; the new commit's sha."""
        self.repo.git.add(A=True)
        self.repo.index.commit(message)
        return self.repo.head.commit.hexsha


@pytest.fixture(scope="session")
def keys() -> tuple[str, str]:
    """The GitHub App's private key and its public half (PEM)."""
    return generate_private_key()


@pytest.fixture
def github(keys: tuple[str, str]) -> Iterator[GitHubStandIn]:
    """A GitHub stand-in serving the App ``APP_ID``."""
    standin = GitHubStandIn(APP_ID, keys[1]).start()
    yield standin
    standin.stop()


@pytest.fixture
def make_repo(tmp_path: Path):
    """A factory of fresh git repositories."""
    counter = iter(range(1000))

    def make(name: str | None = None) -> GitRepo:
        return GitRepo(tmp_path / (name or f"repo{next(counter)}"))

    return make


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a temporary home and the embedded defaults."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime over the embedded store, the offline model and the bundled embedder."""
    runtime = Runtime(settings)
    yield runtime
    runtime.close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy static credentials only: no profile, no shared files, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "standin-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bedrock(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartStandin]:
    """Starts stand-ins and points boto3 at the last one through AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""
    started: list[BedrockStandin] = []

    def start(regions: dict[str, RegionConfig], **options: object) -> BedrockStandin:
        standin = BedrockStandin(regions, **options).__enter__()
        started.append(standin)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.url)
        return standin

    yield start
    for standin in started:
        assert standin.errors == [], "the client sent requests that the service model rejects"
        standin.__exit__(None, None, None)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's server on 127.0.0.1 (SQS and DynamoDB), one per test session; each test makes its own stack."""
    from tests.aws_standin import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    """boto3's standard variables pointing at the moto server (and nowhere else)."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    return moto_server.env()
