"""The incremental pipeline on real git repositories, the real SQLite + Faiss store and the bundled embedder."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from bot.documents import Hit, Repository, Unit
from bot.indexer.filters import IndexOptions
from bot.indexer.pipeline import index_branch
from bot.llm.base import Generation, SummaryResult
from bot.llm.offline import OfflineTextModel
from bot.runtime import Runtime

AUTH = '''"""사용자 인증."""
import hashlib


def hash_password(password: str, salt: str) -> str:
    """비밀번호를 솔트와 함께 해시한다."""
    return hashlib.sha256((salt + password).encode()).hexdigest()


def verify_password(password: str, salt: str, expected: str) -> bool:
    """입력한 비밀번호가 저장된 해시와 같은지 확인한다."""
    return hash_password(password, salt) == expected


class Session:
    """로그인 세션."""

    def __init__(self, user: str) -> None:
        self.user = user

    def expire(self) -> None:
        """세션을 만료시킨다."""
        self.user = ""
'''

MATH = '''def add(a, b):
    return a + b


def mean(values):
    """Average of a list of numbers."""
    return sum(values) / len(values)
'''


class CountingModel(OfflineTextModel):
    """The offline summarizer, counting which functions it was asked to summarize."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def summarize(self, units: Sequence[Unit], lang: str, progress: Callable[[int], None] | None = None,
                  on_summary: Callable[[str, str], None] | None = None) -> SummaryResult:
        self.calls.extend(unit.name for unit in units)
        return super().summarize(units, lang, progress, on_summary)


class FlakyModel(CountingModel):
    """Fails to summarize the functions whose names it is told to fail."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def summarize(self, units, lang, progress=None) -> SummaryResult:
        result = super().summarize(units, lang, progress)
        for unit in units:
            if unit.name in self.failing:
                result.summaries.pop(unit.hash, None)
                result.failed[unit.hash] = "ThrottlingException: Too many requests"
        return result

    def generate(self, request: str, hits: Sequence[Hit], lang: str, repo: Repository) -> Generation:
        return Generation(markdown="", llm=self.name)


APP = Repository(101, "acme/app", 1)


class Wrapping:
    """The runtime's embedder (the bundled model) behind a test's own ``embed_documents``."""

    def __init__(self, real) -> None:
        self.real, self.name, self.dimension = real, real.name, real.dimension

    def embed_documents(self, texts):
        return self.real.embed_documents(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)

    def close(self):
        self.real.close()


def in_the_run(thread_name: str) -> bool:
    """True in an index run's embedding threads (not the relevance cut's reference code, not a search)."""
    return thread_name.startswith("ragcode-embed")


def run(runtime: Runtime, repo, name: Repository = APP, full: bool = False):
    return index_branch(runtime, repo.repo, name, "main", repo.repo.head.commit.hexsha, full=full,
                        options=IndexOptions(summary_lang="ko"))


@pytest.fixture
def model(runtime: Runtime) -> CountingModel:
    model = CountingModel()
    runtime.text_model = model  # the runtime takes any TextModel
    return model


def test_first_run_indexes_every_function(runtime, model, make_repo):
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.write("app/math.py", MATH)
    repo.commit("initial")
    report = run(runtime, repo)
    names = {ref.name for ref in runtime.store.refs(APP.id, "main")}
    assert {"hash_password", "verify_password", "Session.__init__", "Session.expire", "add", "mean",
            "<module>"} <= names
    assert report.previous_commit is None and report.full
    assert report.functions_added == report.functions_total == len(names)
    assert report.summaries_generated == len(model.calls) == len(names)
    assert report.functions_failed == []
    state = runtime.store.branch_state(APP.id, "main")
    assert state.commit == repo.repo.head.commit.hexsha and state.functions == len(names)


def test_push_summarizes_only_changed_functions(runtime, model, make_repo):
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.write("app/math.py", MATH)
    first = repo.commit("initial")
    run(runtime, repo)
    model.calls.clear()

    # two functions change, one is added, one is deleted; a docstring line shifts the rest
    changed = AUTH.replace("hashlib.sha256", "hashlib.sha512").replace('self.user = ""', "self.user = None")
    changed = changed.replace("def verify_password", "def is_admin(user: str) -> bool:\n    \"\"\"관리자인지 확인한다.\"\"\"\n"
                              "    return user == 'admin'\n\n\ndef verify_password")
    repo.write("app/auth.py", changed)
    repo.write("app/math.py", MATH.split("\n\n\ndef mean")[0] + "\n")
    repo.commit("push")
    report = run(runtime, repo)

    assert report.previous_commit == first
    assert (report.functions_added, report.functions_updated, report.functions_removed) == (1, 2, 1)
    assert report.summaries_generated == 3
    assert sorted(model.calls) == ["Session.expire", "hash_password", "is_admin"]
    assert report.files_changed == 2
    names = {ref.name for ref in runtime.store.refs(APP.id, "main")}
    assert "mean" not in names and "is_admin" in names
    shifted = next(ref for ref in runtime.store.refs(APP.id, "main") if ref.name == "verify_password")
    assert repo.path.joinpath("app/auth.py").read_text().splitlines()[shifted.start_line - 1].startswith(
        "def verify_password")


def test_moved_renamed_and_reverted_functions_cost_no_model_call(runtime, model, make_repo):
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.write("app/math.py", MATH)
    repo.commit("initial")
    run(runtime, repo)
    model.calls.clear()

    repo.move("app/math.py", "lib/numbers.py")
    repo.commit("rename")
    report = run(runtime, repo)
    assert report.functions_moved >= 2 and report.functions_added == 0 and report.functions_removed == 0
    assert model.calls == [] and report.summaries_generated == 0
    paths = {ref.path for ref in runtime.store.refs(APP.id, "main")}
    assert "lib/numbers.py" in paths and "app/math.py" not in paths

    repo.write("lib/numbers.py", MATH.replace("return a + b", "return b + a"))
    repo.commit("edit")
    run(runtime, repo)
    assert model.calls == ["add"]
    repo.write("lib/numbers.py", MATH)
    repo.commit("revert")
    report = run(runtime, repo)
    assert model.calls == ["add"], "a reverted function reuses its cached summary"
    assert report.functions_updated == 1 and report.summaries_reused == 1 and report.summaries_generated == 0


def test_unchanged_repository_and_full_replan_reuse_everything(runtime, model, make_repo):
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.commit("initial")
    run(runtime, repo)
    model.calls.clear()
    again = run(runtime, repo)
    assert again.files_changed == 0 and again.summaries_generated == 0
    full = run(runtime, repo, full=True)
    assert full.full and full.summaries_generated == 0 and model.calls == []
    assert full.functions_unchanged == full.functions_total


def test_failed_summaries_are_reported_and_retried_next_run(runtime, make_repo):
    flaky = FlakyModel({"verify_password"})
    runtime.text_model = flaky
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.commit("initial")
    report = run(runtime, repo)
    assert report.functions_failed == ["app/auth.py::verify_password"]
    pending = runtime.store.pending(APP.id, "main")
    assert [ref.name for ref in pending] == ["verify_password"]
    # the function is still searchable with its fallback summary
    assert runtime.store.documents(APP.id, "main", [pending[0].id])[0].summary

    flaky.failing.clear()
    flaky.calls.clear()
    repo.write("assets/logo.png", b"\x89PNG\r\n\x1a\n\0")
    repo.commit("an image only")
    report = run(runtime, repo)
    assert flaky.calls == ["verify_password"] and report.functions_failed == []
    assert runtime.store.pending(APP.id, "main") == []


def test_interrupted_run_is_simply_redone(runtime, make_repo):
    class Crash(RuntimeError):
        pass

    class CrashingEmbedder(Wrapping):
        calls = 0

        def embed_documents(self, texts):
            CrashingEmbedder.calls += 1
            if CrashingEmbedder.calls == 2:
                raise Crash("killed mid-run")
            return self.real.embed_documents(texts)

    repo = make_repo()
    for number in range(90):
        repo.write(f"pkg/m{number}.py", f"def f{number}(x):\n    return x * {number}\n")
    head = repo.commit("many")
    runtime.embedder = CrashingEmbedder(runtime.embedder)
    with pytest.raises(Crash):
        run(runtime, repo)
    state = runtime.store.branch_state(APP.id, "main")
    assert (state.commit, state.functions, state.complete) == (head, 90, False), \
        "searchable by keyword at once, and known to be unfinished"
    assert runtime.store.lexical_search(APP.id, "main", "f42", 5)[0][0] == next(
        ref.id for ref in runtime.store.refs(APP.id, "main") if ref.name == "f42")
    assert runtime.store.without_vectors(APP.id, "main", 100), "the crash left vectors to fill in"
    report = run(runtime, repo)
    assert report.previous_commit == head and report.summaries_generated == 0
    state = runtime.store.branch_state(APP.id, "main")
    assert (state.commit, state.functions, state.complete) == (head, 90, True)
    assert runtime.store.without_vectors(APP.id, "main", 100) == [], "the next run finished the vectors"


def test_switching_embedder_reembeds_instead_of_failing(runtime, model, make_repo):
    repo = make_repo()
    repo.write("app/math.py", MATH)
    repo.commit("initial")
    run(runtime, repo)
    real = runtime.embedder

    class Smaller:
        name, dimension = "test:first-64", 64

        def embed_documents(self, texts):
            return real.embed_documents(texts)[:, :64] * 1.0

        def embed_query(self, text):
            return real.embed_query(text)[:64]

        def close(self):
            real.close()

    runtime.embedder = Smaller()
    model.calls.clear()
    report = run(runtime, repo)
    assert report.full and model.calls == []
    state = runtime.store.branch_state(APP.id, "main")
    assert (state.embedder, state.dimension) == ("test:first-64", 64)
    hits = runtime.store.vector_search(APP.id, "main", Smaller().embed_query("average"), 5)
    assert hits


def test_bad_input_never_stops_the_run(runtime, model, make_repo):
    repo = make_repo()
    repo.write("ok.py", MATH)
    repo.write("broken.py", "def good():\n    return 1\n\ndef broken(:\n    pass\n")
    repo.write("latin1.py", "def caf\xe9():\n    return 'caf\xe9'\n".encode("latin-1"))
    repo.write("image.png", b"\x89PNG\r\n\x1a\n\0\0\0")
    repo.write("data.py", b"def x():\n    return '\0'\n")
    repo.write("huge.py", "x = 1\n" * 200_000)
    repo.write(".env", "AWS_SECRET_ACCESS_KEY=abc\n")
    repo.write("certs/server.pem", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    repo.write("node_modules/lib/index.js", "function vendored() {}\n")
    repo.write("web/app.min.js", "function minified(){}\n")
    repo.write("api/service_pb2.py", "def generated():\n    pass\n")
    repo.write("gen/models.go", "// Code generated by protoc. DO NOT EDIT.\npackage gen\nfunc X() {}\n")
    repo.write("config.py", 'KEY = "AKIAIOSFODNN7EXAMPLE"\n\ndef connect():\n    return KEY\n')
    repo.commit("mess")
    report = run(runtime, repo)
    skipped = {item["path"]: item["reason"] for item in report.files_skipped}
    assert skipped["data.py"] == "binary"
    assert skipped["huge.py"].startswith("larger than")
    assert skipped[".env"] == skipped["certs/server.pem"] == "secret file"
    assert skipped["node_modules/lib/index.js"] == "vendored or generated"
    assert skipped["web/app.min.js"] == "generated (minified or bundled)"
    assert skipped["api/service_pb2.py"] == "vendored or generated" and skipped["gen/models.go"] == "generated"
    assert "image.png" not in {ref.path for ref in runtime.store.refs(APP.id, "main")}
    names = {(ref.path, ref.name) for ref in runtime.store.refs(APP.id, "main")}
    assert ("broken.py", "good") in names
    latin1 = runtime.store.documents(APP.id, "main", [
        ref.id for ref in runtime.store.refs(APP.id, "main", ["latin1.py"])])
    assert latin1 and "\ufffd" in latin1[0].code
    assert report.secrets_redacted == 1
    stored = runtime.store.documents(APP.id, "main", [
        ref.id for ref in runtime.store.refs(APP.id, "main", ["config.py"])])
    assert stored and all("AKIAIOSFODNN7EXAMPLE" not in d.code + d.summary for d in stored)
    assert any("[REDACTED:aws-access-key]" in d.code for d in stored)


def test_force_push_to_unrelated_history_converges(runtime, model, make_repo):
    repo = make_repo()
    repo.write("a.py", MATH)
    repo.commit("one")
    run(runtime, repo)
    # rewrite history: a new root commit with different content
    repo.repo.git.checkout("--orphan", "rewritten")
    repo.repo.git.rm("-rf", ".")
    repo.write("b.py", "def only():\n    return 2\n")
    repo.commit("rewritten root")
    repo.repo.git.branch("-D", "main")
    repo.repo.git.branch("-m", "main")
    run(runtime, repo)
    assert {(ref.path, ref.name) for ref in runtime.store.refs(APP.id, "main")} == {("b.py", "only")}


def test_include_and_exclude_globs(runtime, model, make_repo):
    repo = make_repo()
    repo.write("src/app.py", MATH)
    repo.write("tests/test_app.py", "def test_add():\n    assert True\n")
    repo.write("scripts/tool.py", "def tool():\n    pass\n")
    repo.commit("layout")
    index_branch(runtime, repo.repo, APP, "main", repo.repo.head.commit.hexsha,
                 options=IndexOptions(include=("src/**", "tests/**"), exclude=("tests/",)))
    assert {ref.path for ref in runtime.store.refs(APP.id, "main")} == {"src/app.py"}


VAULT = '''class SecretVault:
    """Internal vault of the payments team."""

    def rotate(self, key):
        """Rotate the key."""
        return key[::-1]


def shared_helper(values):
    """Sum of the values."""
    return sum(values)
'''


def test_identical_code_in_another_repository_reuses_nothing(runtime, model, make_repo):
    private = make_repo("private")
    private.write("payments/internal/vault.py", VAULT)
    private.commit()
    run(runtime, private, Repository(1, "bank/private", 10))
    model.calls.clear()

    other = make_repo("other")
    other.write("lib/helpers.py", VAULT.replace("SecretVault", "Toolbox").replace("payments team", "tools team"))
    other.commit()
    report = run(runtime, other, Repository(2, "someone/else", 20))
    # shared_helper's code is identical, but a summary made for one tenant never serves another
    assert "shared_helper" in model.calls and report.summaries_reused == 0
    assert report.summaries_generated == report.functions_total
    for document in runtime.store.documents(2, "main", [ref.id for ref in runtime.store.refs(2, "main")]):
        assert "SecretVault" not in document.summary and "payments" not in document.summary


def test_summaries_never_name_a_path_so_moved_and_duplicated_code_shows_no_other_place(runtime, model, make_repo):
    repo = make_repo()
    repo.write("old/place.py", VAULT)
    repo.write("copy/elsewhere.py", VAULT.split("\n\n\ndef shared_helper")[1].join(["def shared_helper", ""]))
    repo.commit()
    run(runtime, repo)
    repo.move("old/place.py", "new/home.py")
    repo.commit("move")
    report = run(runtime, repo)
    assert report.functions_moved == 3 and report.summaries_generated == 0
    refs = runtime.store.refs(APP.id, "main")
    for document in runtime.store.documents(APP.id, "main", [ref.id for ref in refs]):
        for path in ("old/place", "new/home", "copy/elsewhere", ".py"):
            assert path not in document.summary, (document.path, document.summary)


def test_the_same_code_under_another_class_gets_its_own_summary(runtime, model, make_repo):
    repo = make_repo()
    repo.write("a.py", VAULT)
    repo.commit()
    run(runtime, repo)
    model.calls.clear()
    repo.write("a.py", VAULT.replace("class SecretVault", "class PublicVault"))
    repo.commit("rename the class")
    report = run(runtime, repo)
    assert "PublicVault.rotate" in model.calls and report.summaries_generated >= 1
    names = {ref.name for ref in runtime.store.refs(APP.id, "main")}
    assert "PublicVault.rotate" in names and "SecretVault.rotate" not in names


def test_a_run_asks_for_at_most_its_budget_of_summaries_and_later_runs_finish(runtime, model, make_repo):
    import dataclasses

    runtime.settings = dataclasses.replace(runtime.settings, max_summaries_per_run=2)
    model.instant = False  # a model whose calls cost (offline summaries are never deferred)
    repo = make_repo()
    repo.write("app/auth.py", AUTH)  # 4 functions and methods, and the module
    repo.commit()
    first = run(runtime, repo)
    assert len(model.calls) == 2 and first.summaries_generated == 2
    assert first.summaries_deferred == first.functions_total - 2 and first.functions_failed == []
    generated = [first.summaries_generated]
    while runtime.store.pending(APP.id, "main"):
        generated.append(run(runtime, repo).summaries_generated)
    assert generated == [2, 2, 1] and len(set(model.calls)) == 5
    model.calls.clear()
    assert run(runtime, repo, full=True).summaries_generated == 0 and model.calls == [], \
        "functions summarized by a retry are unchanged afterwards"


def test_offline_summaries_are_never_deferred_by_the_run_budget(runtime, make_repo):
    import dataclasses

    runtime.settings = dataclasses.replace(runtime.settings, max_summaries_per_run=2)
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.commit()
    report = run(runtime, repo)
    assert report.summaries_deferred == 0 and report.summaries_generated == report.functions_total > 2
    assert runtime.store.pending(APP.id, "main") == [], "nothing is left for a later run: they cost nothing"


def test_a_first_index_answers_before_its_vectors_are_done(runtime, make_repo):
    import threading

    from bot.commands.answer import answer

    release = threading.Event()

    class SlowEmbedder(Wrapping):
        """The bundled model, but the index run's embedding waits until released (searches never wait)."""

        def embed_documents(self, texts):
            if in_the_run(threading.current_thread().name):
                assert release.wait(60)
            return self.real.embed_documents(texts)

    runtime.embedder = SlowEmbedder(runtime.embedder)
    repo = make_repo()
    repo.write("app/auth.py", AUTH)
    repo.write("app/math.py", MATH)
    head = repo.commit()
    finished: list[object] = []
    indexing = threading.Thread(target=lambda: finished.append(run(runtime, repo)))
    indexing.start()
    try:
        deadline = time.time() + 60
        while runtime.store.branch_state(APP.id, "main") is None and time.time() < deadline:
            time.sleep(0.05)
        state = runtime.store.branch_state(APP.id, "main")
        assert state is not None and state.commit == head and not state.complete
        assert runtime.store.without_vectors(APP.id, "main", 100), "vectors are still being filled in"
        early = answer(runtime, APP, "main", "비밀번호를 솔트와 함께 해시하는 함수", html_url="https://github.com/acme/app")
        assert early.hits and early.hits[0].document.name == "hash_password"
        assert "still being completed" in early.markdown or "완성하는 중" in early.markdown
    finally:
        release.set()
        indexing.join(60)
    report = finished[0]
    assert 0 < report.searchable_seconds <= report.seconds
    assert runtime.store.branch_state(APP.id, "main").complete
    assert runtime.store.without_vectors(APP.id, "main", 100) == []
    late = answer(runtime, APP, "main", "비밀번호를 솔트와 함께 해시하는 함수", html_url="https://github.com/acme/app")
    assert late.hits[0].document.name == "hash_password" and "완성하는 중" not in late.markdown


def test_an_embedder_with_several_processes_gets_the_next_batch_before_the_first_returns(runtime, make_repo):
    """No core idles at the end of a batch: the run hands over the next one while the first is being embedded."""
    import threading

    second_started = threading.Event()
    calls: list[int] = []
    overlapped: list[bool] = []

    class TwoProcessEmbedder(Wrapping):
        """The bundled model, as if spread over two processes; the first batch waits (5 s at most) for a second."""

        processes = 2

        def embed_documents(self, texts):
            if in_the_run(threading.current_thread().name):
                calls.append(len(texts))
                if len(calls) == 1:
                    overlapped.append(second_started.wait(5))
                else:
                    second_started.set()
            return self.real.embed_documents(texts)

    runtime.embedder = TwoProcessEmbedder(runtime.embedder)
    repo = make_repo()
    repo.write("pkg/many.py", "".join(f"def step_{n}(x):\n    return x + {n}\n\n\n" for n in range(300)))
    repo.commit("many")
    report = run(runtime, repo)
    assert overlapped == [True], "the second batch was handed over while the first was still out"
    assert len(calls) >= 3 and sum(calls) >= 300
    assert report.functions_total == 300 and runtime.store.without_vectors(APP.id, "main", 10) == []
