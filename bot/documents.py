"""The data that flows through ragcode: code units, indexed documents and search hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def content_hash(code: str, *seen: str) -> str:
    """Hash of a unit's code and of everything else its summary sees (``seen``: name, kind, context…)."""
    text = "\0".join((code, *seen))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def local_repository_id(name: str) -> int:
    """The id of a repository indexed from the command line: negative, so it never equals a GitHub id."""
    return -1 - int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()[:6], "big")


def document_id(repo_id: int, branch: str, path: str, name: str, ordinal: int = 0) -> str:
    """Stable id of a function's document: repository id, branch, path and qualified name."""
    key = f"{repo_id}\0{branch}\0{path}\0{name}\0{ordinal}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Repository:
    """Who a repository is: GitHub's numeric id (tenants are told apart by it, never by name), its name for
    display and links, and the installation that gave access (0 for repositories indexed from the command line)."""

    id: int
    name: str
    installation: int = 0

    @classmethod
    def local(cls, name: str) -> Repository:
        """A repository indexed from the command line under ``name``."""
        return cls(local_repository_id(name), name, 0)


@dataclass(frozen=True)
class Unit:
    """One function, method or module-level block of a source file."""

    path: str
    language: str
    kind: str  # function | method | class | module | window | part
    name: str  # qualified: Class.method, outer.<locals>.inner, <module>
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    code: str
    context: str = ""  # enclosing class or signature lines, for the summarizer
    ordinal: int = 0  # disambiguates two units with the same path and name (overloads)
    calls: tuple[str, ...] = ()  # names it calls (``bot/indexer/tags.py``); not part of its hash

    @property
    def hash(self) -> str:
        """Hash of everything the summary of this unit is made from: code, language, kind, name and context.

        The path is not part of it (summaries never name it), so a moved function keeps its summary, while the
        same code under another name or class gets its own.
        """
        return content_hash(self.code, self.language, self.kind, self.name, self.context)


@dataclass
class Document:
    """A unit as stored in the index, with its summary and embedding."""

    id: str
    repo_id: int
    branch: str
    path: str
    name: str
    kind: str
    language: str
    start_line: int
    end_line: int
    code: str
    content_hash: str
    summary: str
    vector: np.ndarray | None = field(default=None, repr=False)
    summary_ok: bool = True  # False: a fallback summary stands in until a model succeeds
    calls: tuple[str, ...] = ()  # names it calls: ``name``, and ``name@module`` where an import says where


@dataclass(frozen=True)
class DocumentRef:
    """What the planner needs to know of a stored document."""

    id: str
    path: str
    name: str
    content_hash: str
    start_line: int
    end_line: int
    summary_ok: bool = True
    calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class BranchState:
    """The indexed commit of one repository branch."""

    repo_id: int
    repo: str  # the repository's name when it was last indexed or renamed
    installation: int
    branch: str
    commit: str
    functions: int
    indexed_at: float
    embedder: str
    dimension: int
    complete: bool = True  # False while a run is still filling in vectors or model summaries


@dataclass
class Hit:
    """One retrieval result."""

    document: Document
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
    commit: str = ""  # the commit its permalink points at, when not the branch's indexed one (a pull request head)
    relation: str = ""  # for a related function: "callee" (``related_to`` calls it) or "caller" (it calls that)
    related_to: str = ""  # the qualified name of the result it is related to


OVERLAY_PREFIX = "pull:"  # ":" cannot appear in a git branch name, so no branch's index is ever taken for one


def overlay_branch(number: int) -> str:
    """The index scope of pull request ``number``'s overlay."""
    return f"{OVERLAY_PREFIX}{int(number)}"


def is_overlay(branch: str) -> bool:
    """True for the scope of a pull request overlay rather than a branch."""
    return branch.startswith(OVERLAY_PREFIX)


def short_name(name: str) -> str:
    """The last component of a qualified name, without a part number: ``Ledger.record#2`` is ``record``."""
    return name.split("#", 1)[0].rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Overlay:
    """A pull request's changed files indexed at its head on top of the index of a base branch.

    Its documents live in the scope ``overlay_branch(number)``; the base paths it ``shadowed`` (changed, renamed
    or deleted by the pull request) are never answered from the base.
    """

    repo_id: int
    number: int
    base: str  # the branch whose index it overlays
    head: str  # the pull request's head commit it is indexed at
    merge_base: str
    shadowed: tuple[str, ...] = ()
    fork: bool = False

    @property
    def branch(self) -> str:
        """The scope of its documents."""
        return overlay_branch(self.number)
