"""Shared fixtures: real git repositories on disk and a runtime over a temporary RAGCODE_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.config import Settings
from bot.runtime import Runtime


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
