"""What only the embedded store does: Faiss files kept in step with SQLite across crashes and processes."""

from __future__ import annotations

import numpy as np

from bot.documents import Document, document_id
from bot.store.local import LocalStore


def doc(repo: str, name: str, vector: list[float]) -> Document:
    return Document(id=document_id(repo, "main", "a.py", name), repo=repo, branch="main", path="a.py", name=name,
                    kind="function", language="python", start_line=1, end_line=2, code=f"def {name}(): pass",
                    content_hash=name, summary=f"{name} 함수", vector=np.array(vector, dtype=np.float32))


def test_vectors_survive_a_lost_faiss_file(tmp_path):
    store = LocalStore(tmp_path / "index")
    store.write("acme/a", "main", [doc("acme/a", "left", [1, 0, 0]), doc("acme/a", "up", [0, 1, 0])], [])
    store.close()
    files = list((tmp_path / "index" / "faiss").glob("*.faiss"))
    assert len(files) == 1
    files[0].unlink()  # a crash between the SQLite commit and the Faiss save
    reopened = LocalStore(tmp_path / "index")
    [(best, score)] = reopened.vector_search("acme/a", "main", np.array([0, 1, 0], dtype=np.float32), 1)
    assert best == document_id("acme/a", "main", "a.py", "up") and score == 1.0
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1, "the rebuilt index is saved again"


def test_a_second_store_on_the_same_folder_sees_new_writes(tmp_path):
    reader = LocalStore(tmp_path / "index")
    writer = LocalStore(tmp_path / "index")
    writer.write("acme/a", "main", [doc("acme/a", "left", [1, 0, 0])], [])
    assert [i for i, _ in reader.vector_search("acme/a", "main", np.array([1, 0, 0], np.float32), 5)] == [
        document_id("acme/a", "main", "a.py", "left")]
    writer.write("acme/a", "main", [doc("acme/a", "up", [0, 1, 0])], [document_id("acme/a", "main", "a.py", "left")])
    hits = reader.vector_search("acme/a", "main", np.array([1, 0, 0], np.float32), 5)
    assert [i for i, _ in hits] == [document_id("acme/a", "main", "a.py", "up")], "the reader reloaded the index"
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1, "old generations are removed"


def test_each_branch_has_its_own_faiss_index(tmp_path):
    store = LocalStore(tmp_path / "index")
    store.write("acme/a", "main", [doc("acme/a", "left", [1, 0, 0])], [])
    store.write("acme/b", "main", [doc("acme/b", "right", [1, 0, 0])], [])
    found = store.vector_search("acme/b", "main", np.array([1, 0, 0], np.float32), 10)
    assert [i for i, _ in found] == [document_id("acme/b", "main", "a.py", "right")]
    store.drop_branch("acme/a", "main")
    assert store.vector_search("acme/a", "main", np.array([1, 0, 0], np.float32), 10) == []
    assert len(list((tmp_path / "index" / "faiss").glob("*.faiss"))) == 1
