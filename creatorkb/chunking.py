"""Sizing prompts for a context window and splitting long transcripts into parts."""

from __future__ import annotations

import math
import re

# Deliberately pessimistic (real tokenizers average about 4 characters per token on English
# prose): an over-estimate wastes a little context, an under-estimate gets silently cut.
CHARS_PER_TOKEN = 3.0
_SENTENCE_END = re.compile("(?<=[.!?\u3002\uff01\uff1f])\\s+")  # also CJK full stops


def estimate_tokens(text: str) -> int:
    """An upper estimate of the tokens in `text`."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def split_text(text: str, max_tokens: int) -> list[str]:
    """Consecutive parts of at most `max_tokens` (estimated), cut between sentences or words.

    Nothing is dropped: joining the parts with spaces gives back the text's words.
    """
    limit = max(1, int(max_tokens * CHARS_PER_TOKEN))
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        if current and len(current) + 1 + len(piece) > limit:
            parts.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, limit: int) -> list[str]:
    """Sentences, or words of sentences longer than the limit, or slices of huge words."""
    pieces = []
    for sentence in _SENTENCE_END.split(text.strip()):
        if len(sentence) <= limit:
            pieces.append(sentence)
            continue
        for word in sentence.split():
            pieces.extend(word[i : i + limit] for i in range(0, len(word), limit))
    return [piece for piece in pieces if piece]
