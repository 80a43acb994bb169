"""Token counts estimated without a tokenizer: a ratio of tokens per character for each kind of character.

Scripts tokenize very differently: an English word is about one token, a Hangul syllable more than one. The
ratios below were fitted on the summary prompts of 1,050 functions (this repository's Python and the Korean
corpus of ``benchmarks/``, Korean and English prompts) and checked against the token counts that real Bedrock
responses report (``usage.inputTokens``/``outputTokens`` of the recorded Claude and Nova calls in
``shared/data/bedrock-runtime/examples``: the reported input tokens, and the output tokens within 3%, for those
short English calls). They are an estimate: each model family has its own tokenizer; the recorded answer of
the newest Claude (``us.anthropic.claude-opus-4-8``, Markdown and code) took a third more tokens than estimated.
"""

from __future__ import annotations

import math
import re

# tokens per character, by kind of character
ASCII_LETTER = 0.18  # letters and underscore: ~5.6 per token (words and identifiers absorb their leading space)
ASCII_DIGIT = 0.83
ASCII_PUNCTUATION = 0.83  # ~1.2 per token: most operators and brackets are tokens of their own
WHITESPACE = 0.32  # ~3 per token (indentation runs merge)
HANGUL = 1.17  # per syllable: Korean takes more tokens than characters
OTHER = 1.0  # any other character (CJK, symbols, emoji) at least one token
# A chat call frames its system and user messages with a few tokens (Claude Sonnet 4.5 through Converse
# reported 21 input tokens for 13 tokens of text).
FRAMING_TOKENS = 8

_LETTERS = bytes(range(ord("a"), ord("z") + 1)) + bytes(range(ord("A"), ord("Z") + 1)) + b"_"
_DIGITS = b"0123456789"
_SPACES = b" \t\n\r\x0b\x0c"
_HANGUL = re.compile("[\uac00-\ud7a3]")


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` for a Claude-class tokenizer."""
    if not text:
        return 0
    ascii_bytes = text.encode("ascii", "ignore")
    letters = len(ascii_bytes) - len(ascii_bytes.translate(None, _LETTERS))
    digits = len(ascii_bytes) - len(ascii_bytes.translate(None, _DIGITS))
    spaces = len(ascii_bytes) - len(ascii_bytes.translate(None, _SPACES))
    punctuation = len(ascii_bytes) - letters - digits - spaces
    non_ascii = len(text) - len(ascii_bytes)
    hangul = len(_HANGUL.findall(text)) if non_ascii else 0
    tokens = (letters * ASCII_LETTER + digits * ASCII_DIGIT + punctuation * ASCII_PUNCTUATION
              + spaces * WHITESPACE + hangul * HANGUL + (non_ascii - hangul) * OTHER)
    return max(1, math.ceil(tokens))


def estimate_chat_tokens(system: str, user: str) -> int:
    """Estimated input tokens of one chat call with this system and user message."""
    return estimate_tokens(system) + estimate_tokens(user) + FRAMING_TOKENS
