"""How much two insight records about the same video agree.

agreement(a, b) = (tools + key_points) / 2, where
- tools is the Jaccard overlap of the normalised tool names (1.0 when both name none), and
- key_points is the soft overlap of key points: each point's best word-overlap (Jaccard of
  word sets) with any point of the other record, averaged over both records' points.
Used for shadow reviews (was the local answer good enough?) and for consensus, where the
score of several records is their mean pairwise agreement. Free-text answers (prompts) agree
by the Jaccard overlap of their word sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import TypeVar

from creatorkb.confidence import normalize
from creatorkb.insight import Insight

T = TypeVar("T")


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _best_matches(points: list[set[str]], others: list[set[str]]) -> list[float]:
    return [max((_jaccard(p, o) for o in others), default=0.0) for p in points]


def agreement(a: Insight, b: Insight) -> float:
    """0 (nothing in common) to 1 (the same tools and key points)."""
    tools = _jaccard({normalize(t.name) for t in a.tools}, {normalize(t.name) for t in b.tools})
    words_a = [set(normalize(point).split()) for point in a.key_points]
    words_b = [set(normalize(point).split()) for point in b.key_points]
    if not words_a and not words_b:
        points = 1.0
    else:
        matches = _best_matches(words_a, words_b) + _best_matches(words_b, words_a)
        points = sum(matches) / len(matches)
    return (tools + points) / 2


def text_agreement(a: str, b: str) -> float:
    """Agreement of two free-text answers: the Jaccard overlap of their word sets."""
    return _jaccard(set(normalize(a).split()), set(normalize(b).split()))


def mean_agreement(items: Sequence[T], pair_agreement: Callable[[T, T], float]) -> float:
    """Average pairwise agreement of several answers (1.0 for fewer than two)."""
    pairs = list(combinations(items, 2))
    if not pairs:
        return 1.0
    return sum(pair_agreement(a, b) for a, b in pairs) / len(pairs)
