"""Deterministic fake tokenizer shared by the simulated LLM servers.

A token is a run of word characters or a single punctuation mark (regex ``\\w+|[^\\w\\s]``),
so ``"Hello, world!"`` is 4 tokens. Whitespace belongs to no token but is preserved when
text is cut or split.
"""

import re

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Number of fake tokens in ``text``."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def _starts(text: str) -> list[int]:
    return [match.start() for match in TOKEN_RE.finditer(text)]


def truncate_front(text: str, n: int) -> str:
    """Drop tokens from the front so that only the last ``n`` remain."""
    starts = _starts(text)
    if n <= 0:
        return ""
    return text if n >= len(starts) else text[starts[-n] :]


def truncate_back(text: str, n: int) -> str:
    """Drop tokens from the back so that only the first ``n`` remain."""
    starts = _starts(text)
    if n <= 0:
        return ""
    return text if n >= len(starts) else text[: starts[n]].rstrip()


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into one piece per token; the pieces concatenate back to ``text``."""
    cuts = _starts(text)[1:]
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True) if text]
