"""The data that flows through ragcode: code units, indexed documents and search hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def content_hash(code: str) -> str:
    """Hash of a unit's code; equal code means an equal summary and embedding."""
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def document_id(repo: str, branch: str, path: str, name: str, ordinal: int = 0) -> str:
    """Stable id of a function's document: repository, branch, path and qualified name."""
    key = f"{repo}\0{branch}\0{path}\0{name}\0{ordinal}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


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

    @property
    def hash(self) -> str:
        """Content hash of the code."""
        return content_hash(self.code)


@dataclass
class Document:
    """A unit as stored in the index, with its summary and embedding."""

    id: str
    repo: str
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


@dataclass(frozen=True)
class BranchState:
    """The indexed commit of one repository branch."""

    repo: str
    branch: str
    commit: str
    functions: int
    indexed_at: float
    embedder: str
    dimension: int


@dataclass
class Hit:
    """One retrieval result."""

    document: Document
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
