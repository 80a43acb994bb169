"""Answering a request: retrieve from one repository branch (or a pull request's overlay on it), add the related
functions, generate, check what the answer names against the index, render."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.commands import views as scope
from bot.commands.grounding import ground
from bot.commands.related import related
from bot.commands.render import render_reply
from bot.commands.retrieve import retrieve
from bot.documents import Hit, Overlay, Repository
from bot.indexer.secrets import redact
from bot.metrics import ANSWER_SECONDS
from bot.runtime import Runtime
from bot.store.base import MAX_LOOKUP

_NOT_INDEXED = {
    "ko": "이 저장소는 아직 색인되지 않았습니다. 색인이 끝나면 다시 요청해 주세요.",
    "en": "This repository has not been indexed yet. Please ask again once indexing has finished.",
}


@dataclass
class Answer:
    """The reply Markdown and what it was built from."""

    markdown: str
    hits: list[Hit] = field(default_factory=list)
    llm: str = ""
    commit: str = ""
    related: list[Hit] = field(default_factory=list)  # callers and callees of the best hits
    ungrounded: list[str] = field(default_factory=list)  # paths and names the answer gave that the index lacks


def answer(
    runtime: Runtime,
    repo: Repository,
    branch: str,
    request: str,
    *,
    html_url: str,
    boost_paths: Collection[str] = (),
    search_only: bool = False,
    lang: str | None = None,
    tests: str | None = None,
    overlay: Overlay | None = None,
) -> Answer:
    """Retrieve the functions relevant to ``request`` in ``repo``'s ``branch`` and write the reply in ``lang``.

    The index is found by the repository's numeric id; one recorded for another installation (the repository
    changed hands) is never answered from. ``tests`` (``demote``, ``include``, ``exclude``; default
    ``RAGCODE_TESTS``) says how test code ranks. With a pull request's ``overlay`` (on ``branch``, its base) the
    pull request's changed files are answered from its head, and their permalinks point there.
    """
    started = time.monotonic()
    lang = lang or runtime.settings.summary_lang
    state = runtime.store.branch_state(repo.id, branch)
    if state is None or (repo.installation and state.installation and state.installation != repo.installation):
        return Answer(markdown=_NOT_INDEXED["en" if lang == "en" else "ko"])
    views = scope.views_of(branch, overlay)
    hits = retrieve(runtime, repo.id, branch, request, boost_paths=boost_paths, tests=tests, overlay=overlay)
    near = related(runtime.store, repo.id, views, hits, runtime.settings.related, overlay) if hits else []
    body, llm, unknown = "", "", []
    if hits and not search_only:
        generation = runtime.text_model.generate(request, [*hits, *near], lang, repo)
        body, llm = redact(generation.markdown)[0], generation.llm
        if generation.generated:
            grounded = ground(body, lambda paths, names: _lookup(runtime, repo.id, views, paths, names), lang)
            body, unknown = grounded.markdown, grounded.unknown
    markdown = render_reply(body, hits, html_url, state.commit, lang, related=near)
    ANSWER_SECONDS.observe(time.monotonic() - started)
    return Answer(markdown=markdown, hits=hits, llm=llm, commit=state.commit, related=near, ungrounded=unknown)


def _lookup(runtime: Runtime, repo_id: int, views: list[scope.View], paths: list[str],
            names: list[str]) -> tuple[set[str], set[str]]:
    """The paths and function names of ``paths`` and ``names`` that the view has."""
    store = runtime.store
    found = scope.find_names(store, repo_id, views, names)
    if len(found) >= MAX_LOOKUP:  # a common name filled the page: ask for the others one by one
        found += [item for name in names for item in scope.find_names(store, repo_id, views, [name], 20)]
    known = {name for name in names
             if any(ref.name.split("#", 1)[0] == name or ref.name.split("#", 1)[0].endswith("." + name)
                    for _, ref in found)}
    return scope.find_paths(store, repo_id, views, paths), known
