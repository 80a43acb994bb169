"""The production store: documents, branch state and caches in an OpenSearch cluster shared by every instance."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from opensearchpy import (
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    OpenSearch,
    RequestError,
    RequestsHttpConnection,
    TransportError,
)
from opensearchpy import ConnectionError as OpenSearchConnectionError

from bot.config import ConfigError, Settings
from bot.documents import BranchState, Document, DocumentRef, Overlay, Repository, short_name
from bot.store import opensearch_bodies as bodies
from bot.store.base import MAX_LOOKUP, StoreError, name_matches

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RESULT_WINDOW = 10_000  # hits one search may return (index.max_result_window)
BULK_ATTEMPTS = 5
BULK_BACKOFF = 0.2  # seconds before the first retry of throttled bulk items; doubles each time
BULK_MAX_ACTIONS = 1000
BULK_MAX_BYTES = 8 * 1024 * 1024  # below the 10 MB request limit of the smallest managed instances
_INDEX_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,200}")


def _reason(error: Exception) -> str:
    """One line saying why a request failed."""
    if isinstance(error, TransportError):
        info = error.info
        if isinstance(info, dict) and isinstance(info.get("error"), dict):
            cause = info["error"]
            root = (cause.get("root_cause") or [cause])[0]
            return f"{root.get('type', 'error')}: {root.get('reason', '')}".strip()
        return f"{error.status_code} {error.error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class OpenSearchStore:
    """``Store`` on OpenSearch: one documents index per vector dimension plus state and cache indices."""

    def __init__(self, settings: Settings) -> None:
        prefix = settings.opensearch_index_prefix
        if not _INDEX_PREFIX.fullmatch(prefix):
            raise ConfigError(f"RAGCODE_OPENSEARCH_INDEX_PREFIX: {prefix!r} is not a valid index name prefix "
                              "(lower case letters, digits, '-', '_', '.')")
        if settings.opensearch_aws_service not in ("es", "aoss"):
            raise ConfigError("RAGCODE_OPENSEARCH_AWS_SERVICE: must be es (managed domains) or aoss (serverless)")
        if settings.opensearch_shards < 1:
            raise ConfigError("RAGCODE_OPENSEARCH_SHARDS: must be at least 1")
        if not 1 <= settings.opensearch_page_size <= 10_000:
            raise ConfigError("RAGCODE_OPENSEARCH_PAGE_SIZE: must be between 1 and 10000 (the result window)")
        if settings.opensearch_timeout <= 0:
            raise ConfigError("RAGCODE_OPENSEARCH_TIMEOUT: must be positive")
        self.url = settings.opensearch_url
        self.prefix = prefix
        self.page_size = settings.opensearch_page_size
        self.serverless = settings.opensearch_aws_sigv4 and settings.opensearch_aws_service == "aoss"
        self.shards: int | None = None if self.serverless else settings.opensearch_shards
        self._named: set[tuple[int, str]] = set()  # branches whose documents all have a last name stored
        self.client = OpenSearch(
            hosts=[self.url],
            http_auth=self._auth(settings),
            connection_class=RequestsHttpConnection,
            verify_certs=settings.opensearch_verify_certs,
            ssl_show_warn=settings.opensearch_verify_certs,
            ca_certs=settings.opensearch_ca_certs or None,
            timeout=settings.opensearch_timeout,
            max_retries=settings.opensearch_max_retries,
            retry_on_timeout=True,
            retry_on_status=tuple(sorted(RETRY_STATUSES)),
            http_compress=True,
        )
        self._check_cluster()
        self._ensure_index(bodies.state_index(prefix), bodies.state_index_body(self.shards))
        self._ensure_index(bodies.summaries_index(prefix), bodies.summaries_index_body(self.shards))
        self._ensure_index(bodies.vectors_index(prefix), bodies.vectors_index_body(self.shards))
        self._ensure_index(bodies.overlays_index(prefix), bodies.overlays_index_body(self.shards))
        self._add_fields()

    @staticmethod
    def _auth(settings: Settings) -> Any:
        if settings.opensearch_aws_sigv4:
            import boto3
            from opensearchpy import AWSV4SignerAuth

            session = boto3.Session()
            credentials = session.get_credentials()
            if credentials is None:
                raise StoreError("RAGCODE_OPENSEARCH_AWS_SIGV4 is on but boto3 finds no AWS credentials")
            region = settings.opensearch_aws_region or session.region_name
            if not region:
                raise ConfigError("RAGCODE_OPENSEARCH_AWS_REGION: required for SigV4 (or set AWS_REGION)")
            return AWSV4SignerAuth(credentials, region, settings.opensearch_aws_service)
        if settings.opensearch_user:
            return (settings.opensearch_user, settings.opensearch_password)
        return None

    def _check_cluster(self) -> None:
        """Fail with one line when the cluster cannot be reached or lacks the Korean analyzer."""
        try:
            if not self.serverless:
                info = self.client.info()
                log.info("OpenSearch %s at %s", info.get("version", {}).get("number", "?"), self.url)
        except AuthenticationException:
            raise StoreError(f"OpenSearch at {self.url} rejected the credentials "
                             "(OPENSEARCH_USER/OPENSEARCH_PASSWORD or AWS)") from None
        except AuthorizationException as error:
            raise StoreError(f"OpenSearch at {self.url} denied access: {_reason(error)}") from None
        except (OpenSearchConnectionError, TransportError) as error:
            raise StoreError(f"OpenSearch at {self.url} is unreachable: {_reason(error)}") from None
        if self.serverless:
            return  # no _cat/plugins on serverless; Nori is built in there
        try:
            plugins = self.client.cat.plugins(format="json")
        except TransportError as error:
            # Without the permission to list plugins, creating the documents index reports it instead.
            log.warning("cannot list the plugins of %s (%s); not checking for analysis-nori", self.url, _reason(error))
            return
        if not any("nori" in str(plugin.get("component", "")) for plugin in plugins):
            raise StoreError(f"OpenSearch at {self.url} lacks the analysis-nori plugin "
                             "(install it with: opensearch-plugin install analysis-nori)")

    def _ensure_index(self, name: str, body: dict[str, Any]) -> None:
        try:
            if self.client.indices.exists(index=name):
                return
            # A 400 is read here rather than logged as a failure by the client: when several instances start
            # together, all but one find that another created the index first.
            response = self.client.indices.create(index=name, body=body, ignore=400)
        except TransportError as error:
            raise StoreError(f"OpenSearch at {self.url} cannot create {name}: {_reason(error)}") from None
        if not isinstance(response, dict) or "error" not in response:
            log.info("created index %s", name)
            return
        reason = _reason(RequestError(400, "create", response))
        if "resource_already_exists" in reason:
            return
        if "nori" in reason:
            raise StoreError(f"OpenSearch at {self.url} cannot create {name}: the analysis-nori plugin "
                             f"is missing ({reason})")
        raise StoreError(f"OpenSearch at {self.url} cannot create {name}: {reason}")

    def _add_fields(self) -> None:
        """Put fields added to the documents mapping since an index was created into it (adding is allowed on a
        strict mapping; documents written before simply lack them until they are written again)."""
        for index in self._documents_indices().values():
            self._call("put_mapping", self.client.indices.put_mapping, index=index,
                       body={"properties": dict(bodies.ADDED_FIELDS)})

    def _documents_indices(self) -> dict[int, str]:
        """Existing documents indices by dimension."""
        try:
            names = self.client.indices.get_alias(index=bodies.documents_pattern(self.prefix))
        except NotFoundError:
            return {}
        found = {}
        for name in names:
            dimension = bodies.dimension_of(self.prefix, name)
            if dimension is not None:
                found[dimension] = name
        return found

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except TransportError as error:
            raise StoreError(f"OpenSearch {what} failed: {_reason(error)}") from None
        except OpenSearchConnectionError as error:
            raise StoreError(f"OpenSearch at {self.url} is unreachable: {_reason(error)}") from None

    def _search(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        response = self._call("search", self.client.search, index=index, body=body,
                              params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        hits: list[dict[str, Any]] = response["hits"]["hits"]
        return hits

    # --- state ---------------------------------------------------------------------------------

    def branch_state(self, repo_id: int, branch: str) -> BranchState | None:
        """The indexed commit of the repository's branch, or None if it was never indexed."""
        try:  # a 404 is the usual answer for a branch never indexed: ignored, so the client logs no failure
            response = self.client.get(index=bodies.state_index(self.prefix), id=bodies.state_id(repo_id, branch),
                                       ignore=404)
        except (TransportError, OpenSearchConnectionError) as error:
            raise StoreError(f"OpenSearch get failed: {_reason(error)}") from None
        if not response.get("found"):
            return None
        state = bodies.state_from_source(response["_source"])
        return state if (state.repo_id, state.branch) == (repo_id, branch) else None

    def branch_states(self, repo_id: int) -> list[BranchState]:
        """Every indexed branch of one repository."""
        return list(self._states(repo_id=repo_id))

    def repository_ids(self, name: str) -> list[int]:
        """Ids of the indexed repositories last known as ``name``, most recently indexed first."""
        latest: dict[int, float] = {}
        for state in self._states(name=name):
            latest[state.repo_id] = max(latest.get(state.repo_id, 0.0), state.indexed_at)
        return sorted(latest, key=lambda repo_id: -latest[repo_id])

    def all_branch_states(self) -> Iterator[BranchState]:
        """Every indexed branch of every repository, page by page (no cap on how many)."""
        return self._states()

    def _states(self, *, repo_id: int | None = None, name: str | None = None) -> Iterator[BranchState]:
        after: list[Any] | None = None
        while True:
            body = bodies.branch_states_body(self.page_size, repo_id=repo_id, name=name, after=after)
            hits = self._search(bodies.state_index(self.prefix), body)
            for hit in hits:
                yield bodies.state_from_source(hit["_source"])
            if len(hits) < self.page_size:
                return
            after = hits[-1]["sort"]

    def set_state(self, repo: Repository, branch: str, commit: str, embedder: str, dimension: int, *,
                  complete: bool = True) -> None:
        """Record ``commit`` as indexed, then drop the branch's documents left in other dimensions' indices."""
        indices = self._documents_indices()
        for other_dimension, index in indices.items():
            if other_dimension != dimension:
                self._delete_in(index, bodies.delete_branch_body(repo.id, branch), f"{repo.name}@{branch}")
        functions = 0
        if dimension in indices:
            functions = self._call("count", self.client.count, index=indices[dimension],
                                   body=bodies.count_branch_body(repo.id, branch))["count"]
        state = BranchState(repo_id=repo.id, repo=repo.name, installation=repo.installation, branch=branch,
                            commit=commit, functions=int(functions), indexed_at=time.time(), embedder=embedder,
                            dimension=dimension, complete=complete)
        self._put_state(state)
        for other_dimension, index in indices.items():
            if other_dimension != dimension:
                self._drop_if_empty(index)

    def _put_state(self, state: BranchState) -> None:
        self._call("index", self.client.index, index=bodies.state_index(self.prefix),
                   id=bodies.state_id(state.repo_id, state.branch), body=bodies.state_source(state),
                   params={"refresh": "true"})

    def rename_repository(self, repo_id: int, name: str) -> None:
        """Record the repository's new name on each of its branch states."""
        for state in self.branch_states(repo_id):
            self._put_state(dataclasses.replace(state, repo=name))

    def _drop_if_empty(self, index: str) -> None:
        """Delete a documents index of an abandoned dimension once no branch has documents in it."""
        count = self._call("count", self.client.count, index=index, body=bodies.count_all_body())["count"]
        if count == 0:
            try:
                self.client.indices.delete(index=index)
                log.info("deleted the empty documents index %s", index)
            except NotFoundError:
                pass

    def drop_branch(self, repo_id: int, branch: str) -> None:
        """Remove a branch's documents and state (and its overlay record)."""
        for index in self._documents_indices().values():
            self._delete_in(index, bodies.delete_branch_body(repo_id, branch), f"repository {repo_id}@{branch}")
        try:
            for index in (bodies.state_index(self.prefix), bodies.overlays_index(self.prefix)):
                self.client.delete(index=index, id=bodies.state_id(repo_id, branch), params={"refresh": "true"},
                                   ignore=404)
        except (TransportError, OpenSearchConnectionError) as error:
            raise StoreError(f"OpenSearch delete failed: {_reason(error)}") from None

    def forget_repository(self, repo_id: int) -> None:
        """Delete every document, state and cache entry of the repository, each by one query on its id."""
        targets = [bodies.documents_pattern(self.prefix), bodies.state_index(self.prefix),
                   bodies.summaries_index(self.prefix), bodies.vectors_index(self.prefix),
                   bodies.overlays_index(self.prefix)]
        for index in targets:
            self._delete_in(index, bodies.delete_repository_body(repo_id), f"repository {repo_id}")

    def _delete_in(self, index: str, body: dict[str, Any], what: str) -> None:
        response = self._call("delete_by_query", self.client.delete_by_query, index=index, body=body,
                              params={"refresh": "true", "conflicts": "proceed", "ignore_unavailable": "true"})
        if response.get("failures"):
            raise StoreError(f"OpenSearch could not delete every document of {what} in {index}: "
                             f"{json.dumps(response['failures'][0])[:300]}")

    # --- documents -----------------------------------------------------------------------------

    def refs(self, repo_id: int, branch: str, paths: Iterable[str] | None = None) -> list[DocumentRef]:
        """Stored documents of the branch, limited to ``paths`` when given."""
        return self._refs(repo_id, branch, paths)

    def pending(self, repo_id: int, branch: str) -> list[DocumentRef]:
        """Documents of the branch whose summary is still a fallback (``summary_ok`` False), to retry."""
        return self._refs(repo_id, branch, None, pending=True)

    def _refs(self, repo_id: int, branch: str, paths: Iterable[str] | None, pending: bool = False) -> list[DocumentRef]:
        pattern = bodies.documents_pattern(self.prefix)
        groups: list[Sequence[str] | None]
        if paths is None:
            groups = [None]
        else:
            wanted = sorted(set(paths))
            groups = list(_chunks(wanted, self.page_size))
        refs: list[DocumentRef] = []
        for group in groups:
            after: str | None = None
            while True:
                hits = self._search(pattern, bodies.refs_search_body(repo_id, branch, group, self.page_size, after,
                                                                     pending=pending))
                refs.extend(bodies.ref_from_source(hit["_source"]) for hit in hits)
                if len(hits) < self.page_size:
                    break
                after = hits[-1]["sort"][0]
        return refs

    def documents(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[Document]:
        """Full documents (vectors included) of the branch with these ids, in that order, missing ones left out."""
        found: dict[str, Document] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), self.page_size):
            for hit in self._search(bodies.documents_pattern(self.prefix), bodies.ids_search_body(repo_id, branch, chunk)):
                document = bodies.document_from_source(hit["_source"])
                if (document.repo_id, document.branch) == (repo_id, branch):
                    found[hit["_id"]] = document
        return [found[doc_id] for doc_id in ids if doc_id in found]

    def _locate(self, repo_id: int, branch: str, ids: Sequence[str]) -> list[tuple[str, str]]:
        """(index, id) of the branch's documents among ``ids``; ids of other branches are never found."""
        located: list[tuple[str, str]] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), self.page_size):
            body = bodies.ids_search_body(repo_id, branch, chunk, source=False)
            located.extend((hit["_index"], hit["_id"])
                           for hit in self._search(bodies.documents_pattern(self.prefix), body))
        return located

    def write(self, repo_id: int, branch: str, upserts: Sequence[Document], deletes: Sequence[str], *,
              dimension: int | None = None) -> None:
        """Insert or replace ``upserts`` and delete ``deletes`` (ids) in the branch; durable on return."""
        for document in upserts:
            if (document.repo_id, document.branch) != (repo_id, branch):
                raise StoreError(f"document {document.id} belongs to repository {document.repo_id}@"
                                 f"{document.branch}, not {repo_id}@{branch}")
        indices = self._documents_indices()
        lines: list[dict[str, Any]] = []
        if upserts:
            dimension = self._dimension(repo_id, branch, upserts, indices, dimension)
            target = bodies.documents_index(self.prefix, dimension)
            if dimension not in indices:
                self._ensure_index(target, bodies.documents_index_body(dimension, self.shards))
            lines += bodies.bulk_index_lines(target, ((d.id, bodies.document_source(d)) for d in upserts))
            if set(indices) - {dimension}:
                # A document moves to the new dimension's index: drop its copy from the old one.
                stale = self._locate(repo_id, branch, [d.id for d in upserts])
                lines += bodies.bulk_delete_lines(item for item in stale if item[0] != target)
        if deletes:
            lines += bodies.bulk_delete_lines(self._locate(repo_id, branch, deletes))
        self._bulk(lines)

    def without_vectors(self, repo_id: int, branch: str, limit: int) -> list[tuple[str, str, str]]:
        """(id, name, summary) of documents of the branch still without a vector."""
        hits = self._search(bodies.documents_pattern(self.prefix), bodies.without_vectors_body(repo_id, branch, limit))
        return [(hit["_source"]["id"], hit["_source"]["name"], hit["_source"]["summary"]) for hit in hits]

    def set_vectors(self, repo_id: int, branch: str, vectors: dict[str, np.ndarray]) -> None:
        """Set the vectors of existing documents with partial updates (a document moves to its dimension's index
        by being written whole, which ``write`` does)."""
        if not vectors:
            return
        dimensions = {int(np.asarray(vector).size) for vector in vectors.values()}
        target = bodies.documents_index(self.prefix, dimensions.pop())
        located = self._locate(repo_id, branch, list(vectors))
        if dimensions or any(index != target for index, _ in located):
            by_id = {d.id: d for d in self.documents(repo_id, branch, list(vectors))}
            self.write(repo_id, branch, [dataclasses.replace(by_id[i], vector=v) for i, v in vectors.items()
                                         if i in by_id], [])
            return
        self._bulk(bodies.bulk_vector_lines(target, {doc_id: vectors[doc_id] for _, doc_id in located}))

    def _dimension(self, repo_id: int, branch: str, upserts: Sequence[Document], indices: dict[int, str],
                   hint: int | None) -> int:
        """The dimension of the documents index ``upserts`` go to."""
        dimensions = {int(np.asarray(d.vector).size) for d in upserts if d.vector is not None}
        if not dimensions and hint is not None:
            return hint
        if len(dimensions) > 1:
            raise StoreError(f"vectors of different dimensions ({sorted(dimensions)}) in one write to repository {repo_id}@{branch}")
        if dimensions:
            return dimensions.pop()
        state = self.branch_state(repo_id, branch)
        if state is not None and state.dimension in indices:
            return state.dimension
        if len(indices) == 1:
            return next(iter(indices))
        raise StoreError(f"cannot tell which vector dimension documents without vectors of repository {repo_id}@{branch} belong "
                         "to")

    def _bulk(self, lines: list[dict[str, Any]]) -> None:
        """Send bulk lines in requests of bounded size; retry throttled items, raise on the others."""
        for batch in self._batches(lines):
            self._bulk_batch(batch)

    @staticmethod
    def _batches(lines: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        size = actions = 0
        i = 0
        while i < len(lines):
            action = lines[i]
            operation = next(iter(action))
            group = [action] if operation == "delete" else [action, lines[i + 1]]
            group_size = sum(len(json.dumps(line, ensure_ascii=False)) + 1 for line in group)
            if batch and (actions >= BULK_MAX_ACTIONS or size + group_size > BULK_MAX_BYTES):
                yield batch
                batch, size, actions = [], 0, 0
            batch += group
            size += group_size
            actions += 1
            i += len(group)
        if batch:
            yield batch

    def _bulk_batch(self, lines: list[dict[str, Any]]) -> None:
        pending = lines
        delay = BULK_BACKOFF
        for attempt in range(1, BULK_ATTEMPTS + 1):
            response = self._call("bulk", self.client.bulk, body=pending, params={"refresh": "true"})
            retry: list[dict[str, Any]] = []
            failed: list[str] = []
            reasons: list[str] = []
            groups = self._groups(pending)
            if len(response["items"]) != len(groups):
                raise StoreError(f"OpenSearch bulk answered {len(response['items'])} items for {len(groups)} actions")
            for group, item in zip(groups, response["items"], strict=True):
                operation, result = next(iter(item.items()))
                status = int(result.get("status", 500))
                if status < 300 or (operation == "delete" and status == 404):
                    continue
                if status in RETRY_STATUSES and attempt < BULK_ATTEMPTS:
                    retry += group
                    continue
                failed.append(str(result.get("_id", next(iter(group[0].values())).get("_id"))))
                error = result.get("error") or {}
                reasons.append(f"{status} {error.get('type', '')}: {error.get('reason', '')}"
                               if isinstance(error, dict) else f"{status} {error}")
            if failed:
                shown = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
                raise StoreError(f"OpenSearch bulk failed for {len(failed)} document(s): {shown} ({reasons[0]})")
            if not retry:
                return
            log.warning("OpenSearch throttled %d bulk action(s); retrying in %.1fs", len(self._groups(retry)), delay)
            time.sleep(delay)
            delay *= 2
            pending = retry

    @staticmethod
    def _groups(lines: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Bulk lines grouped per action (action line plus its source line, if any)."""
        groups: list[list[dict[str, Any]]] = []
        i = 0
        while i < len(lines):
            width = 1 if "delete" in lines[i] else 2
            groups.append(lines[i:i + width])
            i += width
        return groups

    # --- caches --------------------------------------------------------------------------------

    def _mget(self, index: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        sources: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids, self.page_size):
            response = self._call("mget", self.client.mget, index=index, body=bodies.mget_body(chunk))
            for doc in response["docs"]:
                if doc.get("found"):
                    sources[doc["_id"]] = doc["_source"]
        return sources

    def cached_summaries(self, repo_id: int, keys: Sequence[str]) -> dict[str, str]:
        """Summaries from the repository's cache by key (model, language and content hash)."""
        ids = {bodies.summary_id(repo_id, key): key for key in keys}
        sources = self._mget(bodies.summaries_index(self.prefix), list(ids))
        return {ids[doc_id]: source["summary"] for doc_id, source in sources.items()
                if (source.get("repo_id"), source.get("key")) == (repo_id, ids[doc_id])}

    def cache_summaries(self, repo_id: int, entries: dict[str, str]) -> None:
        """Add summaries to the repository's cache."""
        index = bodies.summaries_index(self.prefix)
        self._bulk(bodies.bulk_index_lines(index, (
            (bodies.summary_id(repo_id, key), bodies.summary_source(repo_id, key, summary))
            for key, summary in entries.items())))

    def cached_vectors(self, repo_id: int, embedder: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings from the repository's cache by embedder and text hash."""
        ids = {bodies.vector_id(repo_id, embedder, key): key for key in keys}
        sources = self._mget(bodies.vectors_index(self.prefix), list(ids))
        return {ids[doc_id]: bodies.vector_from_source(source) for doc_id, source in sources.items()
                if (source.get("repo_id"), source.get("embedder"), source.get("key")) == (repo_id, embedder,
                                                                                          ids[doc_id])}

    def cache_vectors(self, repo_id: int, embedder: str, entries: dict[str, np.ndarray]) -> None:
        """Add embeddings to the repository's cache."""
        index = bodies.vectors_index(self.prefix)
        self._bulk(bodies.bulk_index_lines(index, (
            (bodies.vector_id(repo_id, embedder, key), bodies.vector_source(repo_id, embedder, key, vector))
            for key, vector in entries.items())))

    # --- names, paths, calls, overlays ----------------------------------------------------------

    def _ref_hits(self, body: dict[str, Any]) -> list[DocumentRef]:
        return [bodies.ref_from_source(hit["_source"])
                for hit in self._search(bodies.documents_pattern(self.prefix), body)]

    def find_names(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents named one of ``names``: the qualified name, or its last components (``*.name``, ``name#2``),
        found by their last name and then matched whole."""
        wanted = sorted({name for name in names if name})
        legacy = bool(wanted) and self._without_short_names(repo_id, branch)
        found: list[DocumentRef] = []
        for chunk in _chunks(sorted({short_name(name) for name in wanted}), 100):  # at most 401 clauses of 1,024
            body = bodies.names_search_body(repo_id, branch, chunk, min(10 * limit, MAX_RESULT_WINDOW), legacy=legacy)
            found += [ref for ref in self._ref_hits(body) if any(name_matches(ref.name, name) for name in wanted)]
        return found[:limit]

    def _without_short_names(self, repo_id: int, branch: str) -> bool:
        """True while the branch has documents written before last names were stored (remembered once none is left:
        documents are never written without one again)."""
        if (repo_id, branch) in self._named:
            return False
        count = self._call("count", self.client.count, index=bodies.documents_pattern(self.prefix),
                           body=bodies.without_short_names_body(repo_id, branch),
                           params={"ignore_unavailable": "true", "allow_no_indices": "true"})["count"]
        if count == 0:
            self._named.add((repo_id, branch))
        return bool(count)

    def find_paths(self, repo_id: int, branch: str, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that name a file of the branch, exactly or by its last components."""
        found = set()
        for path in dict.fromkeys(paths):
            clean = path.strip().lstrip("/")
            if clean and self._search(bodies.documents_pattern(self.prefix),
                                      bodies.path_search_body(repo_id, branch, clean)):
                found.add(path)
        return found

    def callers(self, repo_id: int, branch: str, names: Sequence[str], limit: int = MAX_LOOKUP) -> list[DocumentRef]:
        """Documents whose recorded calls include one of ``names``."""
        wanted = sorted({name for name in names if name})[:100]
        if not wanted or limit < 1:
            return []
        return self._ref_hits(bodies.callers_search_body(repo_id, branch, wanted, limit))

    def set_overlay(self, overlay: Overlay) -> None:
        """Record a pull request overlay."""
        self._call("index", self.client.index, index=bodies.overlays_index(self.prefix),
                   id=bodies.state_id(overlay.repo_id, overlay.branch), body=bodies.overlay_source(overlay),
                   params={"refresh": "true"})

    def overlay(self, repo_id: int, branch: str) -> Overlay | None:
        """The overlay recorded for the scope ``branch``."""
        try:
            response = self.client.get(index=bodies.overlays_index(self.prefix), id=bodies.state_id(repo_id, branch),
                                       ignore=404)
        except (TransportError, OpenSearchConnectionError) as error:
            raise StoreError(f"OpenSearch get failed: {_reason(error)}") from None
        if not response.get("found"):
            return None
        overlay = bodies.overlay_from_source(response["_source"])
        return overlay if (overlay.repo_id, overlay.branch) == (repo_id, branch) else None

    # --- search --------------------------------------------------------------------------------

    def lexical_search(self, repo_id: int, branch: str, query: str, limit: int) -> list[tuple[str, float]]:
        """(document id, score) best first, by keyword relevance (Korean morphemes and identifiers)."""
        if not query.strip() or limit < 1:
            return []
        hits = self._search(bodies.documents_pattern(self.prefix),
                            bodies.lexical_search_body(repo_id, branch, query, limit))
        return [(hit["_id"], float(hit["_score"])) for hit in hits]

    def vector_search(self, repo_id: int, branch: str, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """(document id, inner product) best first."""
        if limit < 1:
            return []
        index = bodies.documents_index(self.prefix, int(np.asarray(vector).size))
        hits = self._search(index, bodies.knn_search_body(repo_id, branch, vector, limit))
        return [(hit["_id"], bodies.inner_product(float(hit["_score"]))) for hit in hits]

    def sample_vectors(self, repo_id: int, branch: str, dimension: int, limit: int) -> np.ndarray:
        """The vectors of the ``limit`` lowest document ids (hashes, so an even sample) of ``dimension``."""
        if limit < 1:
            return np.zeros((0, dimension), dtype=np.float32)
        hits = self._search(bodies.documents_index(self.prefix, dimension),
                            bodies.sample_search_body(repo_id, branch, min(limit, MAX_RESULT_WINDOW)))
        vectors = [hit["_source"][bodies.VECTOR_FIELD] for hit in hits
                   if len(hit.get("_source", {}).get(bodies.VECTOR_FIELD) or ()) == dimension]
        if not vectors:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.asarray(vectors, dtype=np.float32)

    def ping(self) -> bool:
        """True when the store answers."""
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def close(self) -> None:
        """Release files and connections."""
        self.client.close()
