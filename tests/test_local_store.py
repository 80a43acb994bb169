"""What only the embedded store does: Faiss files kept in step with SQLite across crashes and processes."""

from __future__ import annotations

import numpy as np
import pytest

from bot.documents import Document, Repository, document_id
from bot.store.local import LocalStore

A, B = 1, 2


def doc(repo: int, name: str, vector: list[float]) -> Document:
    return Document(id=document_id(repo, "main", "a.py", name), repo_id=repo, branch="main", path="a.py", name=name,
                    kind="function", language="python", start_line=1, end_line=2, code=f"def {name}(): pass",
                    content_hash=name, summary=f"{name} 함수", vector=np.array(vector, dtype=np.float32))


def test_vectors_survive_a_lost_faiss_file(tmp_path):
    store = LocalStore(tmp_path / "index")
    store.write(A, "main", [doc(A, "left", [1, 0, 0]), doc(A, "up", [0, 1, 0])], [])
    store.close()
    files = list((tmp_path / "index" / "faiss").glob("*.faiss"))
    assert len(files) == 1
    files[0].unlink()  # a crash between the SQLite commit and the Faiss save
    reopened = LocalStore(tmp_path / "index")
    [(best, score)] = reopened.vector_search(A, "main", np.array([0, 1, 0], dtype=np.float32), 1)
    assert best == document_id(A, "main", "a.py", "up") and score == 1.0
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1, "the rebuilt index is saved again"


def test_a_second_store_on_the_same_folder_sees_new_writes(tmp_path):
    reader = LocalStore(tmp_path / "index")
    writer = LocalStore(tmp_path / "index")
    writer.write(A, "main", [doc(A, "left", [1, 0, 0])], [])
    assert [i for i, _ in reader.vector_search(A, "main", np.array([1, 0, 0], np.float32), 5)] == [
        document_id(A, "main", "a.py", "left")]
    writer.write(A, "main", [doc(A, "up", [0, 1, 0])], [document_id(A, "main", "a.py", "left")])
    hits = reader.vector_search(A, "main", np.array([1, 0, 0], np.float32), 5)
    assert [i for i, _ in hits] == [document_id(A, "main", "a.py", "up")], "the reader reloaded the index"
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1, "old generations are removed"


def test_each_branch_has_its_own_faiss_index(tmp_path):
    store = LocalStore(tmp_path / "index")
    store.write(A, "main", [doc(A, "left", [1, 0, 0])], [])
    store.write(B, "main", [doc(B, "right", [1, 0, 0])], [])
    found = store.vector_search(B, "main", np.array([1, 0, 0], np.float32), 10)
    assert [i for i, _ in found] == [document_id(B, "main", "a.py", "right")]
    store.drop_branch(A, "main")
    assert store.vector_search(A, "main", np.array([1, 0, 0], np.float32), 10) == []
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1


def test_an_index_of_the_old_format_is_dropped_and_rebuilt(tmp_path, caplog):
    import sqlite3

    folder = tmp_path / "index"
    folder.mkdir()
    old = sqlite3.connect(folder / "ragcode.sqlite3")
    old.executescript("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, id TEXT, scope TEXT);"
                      "CREATE TABLE branches (scope TEXT PRIMARY KEY, repo TEXT, branch TEXT);"
                      "INSERT INTO branches VALUES ('x', 'acme/a', 'main');")
    old.close()
    store = LocalStore(folder)
    assert "older format" in caplog.text
    assert list(store.all_branch_states()) == []
    store.write(A, "main", [doc(A, "left", [1, 0, 0])], [])
    assert [i for i, _ in store.vector_search(A, "main", np.array([1, 0, 0], np.float32), 1)] == [
        document_id(A, "main", "a.py", "left")]


@pytest.mark.parametrize("version", [2, 3])
def test_an_index_of_an_older_format_is_upgraded_in_place_and_read_as_is_until_then(tmp_path, version):
    import sqlite3

    store = LocalStore(tmp_path / "index")
    store.write(A, "main", [doc(A, "left", [1, 0, 0])], [])
    store.cache_summaries(A, {"m|ko|h": "요약"})
    store.set_state(Repository(A, "acme/a", 1), "main", "c" * 40, "e", 3)
    store.close()
    # what a format-3 index looks like: no calls column, no overlays table; format 2 has no complete flag either
    old = sqlite3.connect(tmp_path / "index" / "ragcode.sqlite3")
    old.executescript("DROP INDEX documents_short_name; ALTER TABLE documents DROP COLUMN calls;"
                      "ALTER TABLE documents DROP COLUMN short_name; DROP TABLE overlays;"
                      + ("ALTER TABLE branches DROP COLUMN complete;" if version == 2 else "")
                      + f"PRAGMA user_version = {version};")
    old.close()
    reader = LocalStore(tmp_path / "index", read_only=True)
    assert [(state.commit, state.complete) for state in reader.branch_states(A)] == [("c" * 40, True)]
    assert [(ref.name, ref.calls) for ref in reader.refs(A, "main")] == [("left", ())]
    assert reader.callers(A, "main", ["left"]) == [] and reader.overlay(A, "pull:1") is None
    assert [ref.name for ref in reader.find_names(A, "main", ["left"])] == ["left"]
    reader.close()
    upgraded = LocalStore(tmp_path / "index")
    assert [(state.commit, state.complete) for state in upgraded.branch_states(A)] == [("c" * 40, True)]
    assert [d.name for d in upgraded.documents(A, "main", [document_id(A, "main", "a.py", "left")])] == ["left"]
    assert [ref.name for ref in upgraded.find_names(A, "main", ["left"])] == ["left"], "last names filled in"
    assert upgraded.cached_summaries(A, ["m|ko|h"]) == {"m|ko|h": "요약"}, "nothing was dropped"
    called = Document(**{**doc(A, "caller", [0, 1, 0]).__dict__, "calls": ("left",)})
    upgraded.write(A, "main", [called], [])
    assert [ref.name for ref in upgraded.callers(A, "main", ["left"])] == ["caller"]


def test_loaded_vectors_stay_under_the_memory_cap(tmp_path):
    store = LocalStore(tmp_path / "index", cache_bytes=16)  # room for one branch of one 3-dimensional vector
    store.write(A, "main", [doc(A, "left", [1, 0, 0])], [])
    store.write(B, "main", [doc(B, "right", [0, 1, 0])], [])
    for repo, name, vector in ((A, "left", [1, 0, 0]), (B, "right", [0, 1, 0]), (A, "left", [1, 0, 0])):
        [(found, _)] = store.vector_search(repo, "main", np.array(vector, np.float32), 1)
        assert found == document_id(repo, "main", "a.py", name)
        assert sum(v.nbytes for v in store._indexes.values()) <= 16


def test_a_search_does_not_wait_for_another_branchs_write(tmp_path):
    import threading

    store = LocalStore(tmp_path / "index")
    store.write(B, "main", [doc(B, "right", [0, 1, 0])], [])
    many = [Document(id=document_id(A, "main", f"m{i}.py", "f"), repo_id=A, branch="main", path=f"m{i}.py", name="f",
                     kind="function", language="python", start_line=1, end_line=2, code="def f(): pass",
                     content_hash=str(i), summary=f"장바구니의 상품 {i}개를 결제하고 영수증을 보낸다",
                     vector=np.array([1, 0, 0], dtype=np.float32)) for i in range(6000)]
    started = threading.Event()

    def write() -> None:
        started.set()
        store.write(A, "main", many, [])

    writer = threading.Thread(target=write)
    writer.start()
    started.wait()
    found = store.vector_search(B, "main", np.array([0, 1, 0], np.float32), 1)
    assert writer.is_alive(), "the search waited for the write of another branch"
    writer.join()
    assert [i for i, _ in found] == [document_id(B, "main", "a.py", "right")]
    assert len(store.refs(A, "main")) == 6000
