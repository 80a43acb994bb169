"""The no-model backend: extractive summaries and retrieval-only answers."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from bot.documents import Hit, Repository, Unit
from bot.llm.base import Conversation, Generation, SummaryResult
from bot.markdown import fence
from bot.text import IDENTIFIER, split_identifier

_DOC_PATTERNS = (
    re.compile(r'"""(.*?)"""', re.DOTALL),
    re.compile(r"'''(.*?)'''", re.DOTALL),
    re.compile(r"/\*\*?(.*?)\*/", re.DOTALL),
)
_LINE_COMMENT = re.compile(r"^\s*(?:///?|#|--|;;)\s?(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s|(?<=다\.)|\n\s*\n")
_KEYWORDS = frozenset(
    "def class return if else elif for while in not and or is none true false self cls import from as with try "
    "except finally raise yield async await lambda pass break continue function const let var new this null "
    "undefined public private protected static void int long float double bool boolean string char struct impl "
    "fn pub mut use mod match enum trait where func package type interface go defer chan map range select case "
    "switch default throw throws catch extends implements super final abstract begin end do then elsif unless "
    "module require nil puts auto unsigned signed sizeof typedef namespace template typename virtual override "
    "include define ifdef endif".split()
)
MAX_NAME_CHARS = 200  # of a name quoted in a summary
MAX_WORD_CHARS = 40  # longer "words" are data or hostile identifiers, not vocabulary
_FIRST_PARAM_LANGUAGES = frozenset({"python", "javascript", "typescript", "tsx", "rust", "ruby", "go"})
_KIND_WORDS = {
    "ko": {"function": "함수", "method": "메서드", "module": "모듈 수준 코드", "class": "클래스", "part": "함수의 일부",
           "window": "코드 구간"},
    "en": {"function": "Function", "method": "Method", "module": "Module-level code", "class": "Class",
           "part": "Part of function", "window": "Code section"},
}


def doc_comment(code: str) -> str:
    """The first documentation text in ``code`` (docstring, block or line comments), whitespace collapsed."""
    for pattern in _DOC_PATTERNS:
        match = pattern.search(code)
        if match and match.group(1).strip(" *\n\t"):
            return _clean_doc(match.group(1))
    lines = []
    for line in code.splitlines():
        comment = _LINE_COMMENT.match(line)
        if comment:
            lines.append(comment.group(1))
        elif lines:
            break
    return _clean_doc("\n".join(lines))


def _clean_doc(text: str) -> str:
    lines = [line.strip().lstrip("*").strip() for line in text.splitlines()]
    body = " ".join(line for line in lines if line and not line.startswith(("@", ":param", ":return", "Args:")))
    return re.sub(r"\s+", " ", body).strip()


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of ``text``, at most ``limit`` characters."""
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def parameters(code: str, language: str) -> list[str]:
    """Parameter names from the signature at the start of ``code``."""
    head = code[: code.find("{") if "{" in code[:400] else 400]
    start = head.find("(")
    if start < 0:
        return []
    depth, end = 0, -1
    for index in range(start, len(head)):
        depth += {"(": 1, ")": -1}.get(head[index], 0)
        if depth == 0:
            end = index
            break
    inner = head[start + 1 : end] if end > 0 else head[start + 1 :]
    names: list[str] = []
    for segment in re.split(r",(?![^<\[(]*[>\])])", inner):
        segment = segment.split("=")[0]
        if language in _FIRST_PARAM_LANGUAGES:
            segment = segment.split(":")[0]
        found = [word for word in IDENTIFIER.findall(segment) if word not in _KEYWORDS]
        if found:
            names.append(found[0] if language in _FIRST_PARAM_LANGUAGES else found[-1])
    return [name for name in names if name not in ("self", "cls", "this")]


def key_words(code: str, exclude: set[str], limit: int = 12) -> list[str]:
    """The most frequent words of the identifiers in ``code`` (words longer than MAX_WORD_CHARS left out)."""
    counts: Counter[str] = Counter()
    for identifier in IDENTIFIER.findall(code):
        if identifier.lower() in _KEYWORDS:
            continue
        for word in split_identifier(identifier):
            if 2 < len(word) <= MAX_WORD_CHARS and word not in exclude and word not in _KEYWORDS:
                counts[word] += 1
    return [word for word, _ in counts.most_common(limit)]


def _clip(text: str, limit: int = MAX_NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def extractive_summary(unit: Unit, lang: str) -> str:
    """A summary built from the unit itself: kind, name, class, doc comment, parameters and key words.

    Like a model's summary it never names the file: summaries are cached by what they are made of (``Unit.hash``),
    and the same code at another path must not carry this path. Every part is bounded (names at MAX_NAME_CHARS,
    words at MAX_WORD_CHARS), whatever the code.
    """
    words = _KIND_WORDS["en" if lang == "en" else "ko"]
    name = _clip(unit.name)
    short_name = name.rsplit(".", 1)[-1].split("#")[0]
    name_words = " ".join(word for word in split_identifier(short_name) if len(word) <= MAX_WORD_CHARS)
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    doc = first_sentence(doc_comment(unit.code))
    params = parameters(unit.code, unit.language) if unit.kind not in ("module", "window") else []
    keywords = key_words(unit.code, set(split_identifier(short_name)))
    if lang == "en":
        parts = [f"{words.get(unit.kind, 'Code')} `{name}` ({name_words})."]
        if owner and unit.kind in ("method", "part"):
            parts.append(f"Belongs to `{owner}`.")
        if doc:
            parts.append(doc if doc.endswith((".", "!", "?")) else doc + ".")
        if params:
            parts.append("Parameters: " + ", ".join(f"`{p}`" for p in params) + ".")
        if keywords:
            parts.append("Uses: " + ", ".join(keywords) + ".")
    else:
        parts = [f"{words.get(unit.kind, '코드')} `{name}` ({name_words})."]
        if owner and unit.kind in ("method", "part"):
            parts.append(f"`{owner}`에 속한다.")
        if doc:
            parts.append(f"설명: {doc}")
        if params:
            parts.append("매개변수: " + ", ".join(f"`{p}`" for p in params) + ".")
        if keywords:
            parts.append("주요 식별자: " + ", ".join(keywords) + ".")
    return " ".join(parts)


class OfflineTextModel:
    """Summaries extracted from the code; answers list the relevant functions instead of generating code."""

    name = "offline"

    instant = True

    def summarize(
        self, units: Sequence[Unit], lang: str, progress: Callable[[int], None] | None = None,
        on_summary: Callable[[str, str], None] | None = None,
    ) -> SummaryResult:
        """Extractive summaries, keyed by content hash."""
        result = SummaryResult()
        for unit in units:
            if unit.hash not in result.summaries:
                result.summaries[unit.hash] = extractive_summary(unit, lang)
                if on_summary is not None:
                    on_summary(unit.hash, result.summaries[unit.hash])
        if progress:
            progress(len(units))
        return result

    def generate(self, request: str, hits: Sequence[Hit], lang: str, repo: Repository,
                 conversation: Conversation | None = None) -> Generation:
        """The most relevant function's code and how to turn on generation (a thread changes nothing here)."""
        if lang == "en":
            notice = ("ragcode runs without a language model (`RAGCODE_LLM=offline`), so it shows the most relevant "
                      "code instead of writing new code. Set `RAGCODE_LLM=bedrock` or `RAGCODE_LLM=openai` to "
                      "enable generation.")
        else:
            notice = ("언어 모델 없이 실행 중이라(`RAGCODE_LLM=offline`) 새 코드를 생성하지 않고 가장 관련 있는 코드를 "
                      "보여 줍니다. 코드 생성을 켜려면 `RAGCODE_LLM=bedrock` 또는 `RAGCODE_LLM=openai`로 설정하세요.")
        if not hits:
            return Generation(markdown=notice, llm=self.name, generated=False)
        best = hits[0].document
        block = fence(best.code, best.language)
        return Generation(markdown=f"{notice}\n\n{block}", llm=self.name, generated=False)

    def usage(self) -> dict[str, dict[str, float]]:
        """No model calls are made."""
        return {}
