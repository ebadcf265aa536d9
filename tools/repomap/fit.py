"""Fit the map to a token budget: the longest prefix of the ranked definitions whose rendered
outline stays within the budget (binary search; rendering is monotone in the prefix)."""

from __future__ import annotations

from collections.abc import Callable

from tools.repomap.extract import FileTags
from tools.repomap.render import render


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4  # about 4 characters per token for code and English


def fit(ranked: list[tuple[str, str]], tags: dict[str, FileTags], budget: int,
        count: Callable[[str], int] = estimate_tokens) -> tuple[str, int]:
    """(outline, definitions shown) for the best-ranked (file, name) pairs within `budget`."""
    lo, hi, best = 0, len(ranked), ""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        text = render(ranked[:mid], tags)
        if count(text) <= budget:
            lo, best = mid, text
        else:
            hi = mid - 1
    if lo and not best:
        best = render(ranked[:lo], tags)
    return best, lo
