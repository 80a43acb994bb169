"""Shared fixtures: real git repositories on disk and a runtime over a temporary RAGCODE_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.config import Settings
from bot.runtime import Runtime


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
