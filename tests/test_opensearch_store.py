"""The OpenSearch store's start-up checks and bulk error handling, against the loopback stand-in."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from bot.config import ConfigError, Settings
from bot.store.base import StoreError
from bot.store.opensearch import BULK_ATTEMPTS, OpenSearchStore
from tests import opensearch_spec
from tests.opensearch_standin import StandIn, serve
from tests.test_store_contract import APP, make_doc

pytestmark = pytest.mark.skipif(not opensearch_spec.available(),
                                reason=f"no OpenSearch API specification at {opensearch_spec.SPEC_DIR}")


def _settings(url: str, **changes: object) -> Settings:
    return Settings(store="opensearch", opensearch_url=url, opensearch_index_prefix="ragcode-test",
                    opensearch_timeout=5.0, **changes)


@pytest.fixture
def standin() -> StandIn:
    return StandIn()


@pytest.fixture
def store(standin: StandIn) -> Iterator[OpenSearchStore]:
    with serve(standin) as url:
        store = OpenSearchStore(_settings(url))
        yield store
        store.close()
    assert standin.problems == []


def test_creates_its_indices_with_the_documents_index_on_first_write(store: OpenSearchStore, standin: StandIn) -> None:
    assert set(standin.indices) == {"ragcode-test-v2-state", "ragcode-test-v2-summaries", "ragcode-test-v2-vectors"}
    store.write(APP, "main", [make_doc(dimension=8)], [])
    assert "ragcode-test-v2-documents-8" in standin.indices
    assert store.vector_search(APP, "main", make_doc(dimension=16).vector, 5) == []


def test_a_branch_never_indexed_is_no_failure_in_the_log(store: OpenSearchStore,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert store.branch_state(APP, "main") is None
        store.drop_branch(APP, "feature")  # a deleted branch that was never indexed
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_an_index_another_instance_created_meanwhile_is_no_failure(store: OpenSearchStore, standin: StandIn,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    store.write(APP, "main", [make_doc()], [])
    standin.created_meanwhile.add("ragcode-test-v2-state")
    with caplog.at_level(logging.INFO):
        other = OpenSearchStore(_settings(store.url))  # sees no state index, then finds it exists on creating it
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert standin.created_meanwhile == set() and [r.id for r in other.refs(APP, "main")] == [make_doc().id]
    other.close()


def test_throttled_bulk_items_are_retried(store: OpenSearchStore, standin: StandIn) -> None:
    docs = [make_doc(name=f"f{i}", seed=i) for i in range(3)]
    standin.fail_once[docs[1].id] = 429
    standin.fail_once[docs[2].id] = 503
    store.write(APP, "main", docs, [])
    assert {r.id for r in store.refs(APP, "main")} == {d.id for d in docs}
    assert standin.fail_once == {}


def test_rejected_bulk_items_raise_naming_the_documents(store: OpenSearchStore, standin: StandIn) -> None:
    docs = [make_doc(name=f"f{i}", seed=i) for i in range(3)]
    standin.fail_always[docs[2].id] = (400, "mapper_parsing_exception")
    with pytest.raises(StoreError) as error:
        store.write(APP, "main", docs, [])
    message = str(error.value)
    assert docs[2].id in message and docs[0].id not in message
    assert "mapper_parsing_exception" in message and "\n" not in message


def test_items_throttled_on_every_attempt_raise(store: OpenSearchStore, standin: StandIn) -> None:
    doc = make_doc()
    standin.fail_always[doc.id] = (429, "es_rejected_execution_exception")
    with pytest.raises(StoreError, match=doc.id):
        store.write(APP, "main", [doc], [])
    bulk_requests = [r for r in standin.requests if r[0].endswith("_bulk")]
    assert len(bulk_requests) <= BULK_ATTEMPTS


def test_cache_writes_are_checked_too(store: OpenSearchStore, standin: StandIn) -> None:
    from bot.store.opensearch_bodies import summary_id

    standin.fail_always[summary_id(APP, "broken")] = (400, "mapper_parsing_exception")
    with pytest.raises(StoreError, match=summary_id(APP, "broken")):
        store.cache_summaries(APP, {"fine": "좋다", "broken": "나쁘다"})


def test_documents_of_another_branch_are_refused(store: OpenSearchStore) -> None:
    with pytest.raises(StoreError, match="belongs to repository 101@dev"):
        store.write(APP, "main", [make_doc(branch="dev")], [])


def test_missing_nori_plugin_fails_at_start_up() -> None:
    with serve(StandIn(plugins=("opensearch-knn",))) as url, pytest.raises(StoreError) as error:
        OpenSearchStore(_settings(url))
    assert "analysis-nori" in str(error.value) and "\n" not in str(error.value)


def test_missing_nori_plugin_is_named_on_first_write_when_plugins_cannot_be_listed() -> None:
    with serve(StandIn(plugins=("opensearch-knn",), list_plugins=False)) as url:
        store = OpenSearchStore(_settings(url))
        with pytest.raises(StoreError) as error:
            store.write(APP, "main", [make_doc()], [])
    assert "the analysis-nori plugin is missing" in str(error.value) and "\n" not in str(error.value)


def test_unreachable_cluster_fails_at_start_up() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError, match="unreachable") as error:
        OpenSearchStore(_settings(f"http://127.0.0.1:{port}", opensearch_max_retries=0))
    assert "\n" not in str(error.value)


def test_basic_auth(standin: StandIn) -> None:
    standin.basic_auth = "ragcode:s3cret"
    with serve(standin) as url:
        with pytest.raises(StoreError, match="rejected the credentials"):
            OpenSearchStore(_settings(url, opensearch_user="ragcode", opensearch_password="wrong"))
        store = OpenSearchStore(_settings(url, opensearch_user="ragcode", opensearch_password="s3cret"))
        assert store.ping()
        store.close()


@pytest.mark.parametrize("prefix", ["Ragcode", "-x", "a b", "a*"])
def test_bad_index_prefix_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="RAGCODE_OPENSEARCH_INDEX_PREFIX"):
        OpenSearchStore(Settings(store="opensearch", opensearch_url="http://127.0.0.1:9",
                                 opensearch_index_prefix=prefix))
