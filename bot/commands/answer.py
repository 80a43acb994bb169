"""Answering a request: retrieve from one repository branch, generate, render."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.commands.render import MAX_REPLY_CHARS, render_reply
from bot.commands.retrieve import retrieve
from bot.documents import Hit, Repository
from bot.indexer.secrets import redact
from bot.metrics import ANSWER_SECONDS
from bot.runtime import Runtime

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
) -> Answer:
    """Retrieve the functions relevant to ``request`` in ``repo``'s ``branch`` and write the reply in ``lang``.

    The index is found by the repository's numeric id; one recorded for another installation (the repository
    changed hands) is never answered from. ``tests`` (``demote``, ``include``, ``exclude``; default
    ``RAGCODE_TESTS``) says how test code ranks.
    """
    started = time.monotonic()
    lang = lang or runtime.settings.summary_lang
    state = runtime.store.branch_state(repo.id, branch)
    if state is None or (repo.installation and state.installation and state.installation != repo.installation):
        return Answer(markdown=_NOT_INDEXED["en" if lang == "en" else "ko"])
    hits = retrieve(runtime, repo.id, branch, request, boost_paths=boost_paths, tests=tests)
    body, llm = "", ""
    if hits and not search_only:
        generation = runtime.text_model.generate(request, hits, lang, repo)
        body, llm = redact(generation.markdown)[0], generation.llm
    note = "" if state.complete else _INCOMPLETE["en" if lang == "en" else "ko"]
    markdown = render_reply(body, hits, html_url, state.commit, lang, MAX_REPLY_CHARS - len(note) - 2)
    if note:
        markdown = f"{note}\n\n{markdown}"
    ANSWER_SECONDS.observe(time.monotonic() - started)
    return Answer(markdown=markdown, hits=hits, llm=llm, commit=state.commit)
