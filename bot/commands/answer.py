"""Answering a request: retrieve from one repository branch (or a pull request's overlay on it), add the related
functions, generate, check what the answer names against the index, render."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.commands import views as scope
from bot.commands.followup import follow_up_paths, follow_up_query, merge_hits
from bot.commands.grounding import ground
from bot.commands.related import related
from bot.commands.render import MAX_REPLY_CHARS, render_reply, sanitize_within, size, words
from bot.commands.retrieve import retrieve
from bot.commands.suggest import suggestion_block, take_suggestion
from bot.documents import Hit, Overlay, Repository
from bot.indexer.secrets import redact
from bot.llm.base import Conversation
from bot.metrics import ANSWER_SECONDS
from bot.runtime import Runtime
from bot.store.base import MAX_LOOKUP

_INCOMPLETE = {  # an index run is still filling in vectors or model summaries
    "ko": "> 이 저장소의 색인을 아직 완성하는 중이라, 지금은 찾을 수 있는 것만으로 답했습니다.",
    "en": "> This repository's index is still being completed; this answer uses what is indexed so far.",
}
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
    suggested: bool = False  # it starts with a ```suggestion block for the commented lines


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
    conversation: Conversation | None = None,
    limit: int = MAX_REPLY_CHARS,
    commit_line: bool = True,
) -> Answer:
    """Retrieve the functions relevant to ``request`` in ``repo``'s ``branch`` and write the reply in ``lang``.

    The index is found by the repository's numeric id; one recorded for another installation (the repository
    changed hands) is never answered from. ``tests`` (``demote``, ``include``, ``exclude``; default
    ``RAGCODE_TESTS``) says how test code ranks. With a pull request's ``overlay`` (on ``branch``, its base) the
    pull request's changed files are answered from its head, and their permalinks point there. A
    ``conversation`` (a follow-up, a review comment) is searched with too and goes to the model; a review
    comment that asks for a change gets a ```suggestion block for its lines when the model writes one. Paths and
    functions the answer names that the index lacks are marked. The reply takes at most ``limit`` characters.
    """
    started = time.monotonic()
    lang = lang or runtime.settings.summary_lang
    state = runtime.store.branch_state(repo.id, branch)
    if state is None or (repo.installation and state.installation and state.installation != repo.installation):
        return Answer(markdown=_NOT_INDEXED["en" if lang == "en" else "ko"])
    views = scope.views_of(branch, overlay)
    hits = retrieve(runtime, repo.id, branch, request, boost_paths=boost_paths, tests=tests, overlay=overlay)
    if conversation is not None and (conversation.turns or conversation.focus is not None):
        # "make it async" alone finds nothing: the thread's earlier requests and functions find what "it" is
        follow = retrieve(runtime, repo.id, branch, follow_up_query(request, conversation),
                          boost_paths=[*boost_paths, *follow_up_paths(conversation)], tests=tests, overlay=overlay)
        hits = merge_hits(hits, follow, runtime.settings.top_k, tests or runtime.settings.tests)
    near = related(runtime.store, repo.id, views, hits, runtime.settings.related, overlay) if hits else []
    focus = conversation.focus if conversation is not None else None
    body, llm, suggestion, unknown = "", "", None, []
    if (hits or focus is not None) and not search_only:
        generation = runtime.text_model.generate(request, [*hits, *near], lang, repo, conversation)
        body, llm = redact(generation.markdown)[0], generation.llm
        if focus is not None and focus.change and generation.generated:
            suggestion, body = take_suggestion(body, focus)
        if generation.generated:
            grounded = ground(body, lambda paths, names: _lookup(runtime, repo.id, views, paths, names), lang)
            body, unknown = grounded.markdown, grounded.unknown
    note = "" if state.complete else f"{_INCOMPLETE['en' if lang == 'en' else 'ko']}\n\n"
    head = note + (f"{suggestion_block(suggestion)}\n\n" if suggestion is not None else "")
    if hits or not (body.strip() or suggestion is not None):
        markdown = head + render_reply(body, hits, html_url, state.commit, lang, limit - size(head), commit_line,
                                       related=near)
    else:  # the commented lines answered without any function of the repository
        markdown = head + sanitize_within(body, html_url, limit - size(head), words(lang)["shortened"])
    ANSWER_SECONDS.observe(time.monotonic() - started)
    return Answer(markdown=markdown.rstrip("\n"), hits=hits, llm=llm, commit=state.commit, related=near,
                  ungrounded=unknown, suggested=suggestion is not None)


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
