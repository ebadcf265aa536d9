"""Prefix reuse: a prompt that extends an earlier sequence skips prefilling the shared part.

Every prefill goes through this interface (generate.py):
    state, n = cache.lookup(tokens)   # a state covering tokens[:n] that the caller may advance
                                      # (the cache keeps its own), or (None, 0)
    cache.store(tokens, state)        # state has consumed exactly `tokens`; the cache owns it now
This body is the simplest correct one: remember the last sequence, reuse it when the new tokens
extend it. Issue 6 replaces the body (paged storage, several sequences, a byte budget).
"""

from __future__ import annotations

from engine.state import ModelState


class PrefixCache:
    def __init__(self, budget_bytes: int = 0) -> None:
        self.budget_bytes = budget_bytes  # unused by this body: it keeps one sequence
        self.tokens: list[int] = []
        self.state: ModelState | None = None

    def lookup(self, tokens: list[int]) -> tuple[ModelState | None, int]:
        n = len(self.tokens)
        if self.state is None or n == 0 or n > len(tokens) or tokens[:n] != self.tokens:
            return None, 0
        return self.state.copy(), n

    def store(self, tokens: list[int], state: ModelState) -> None:
        if state.pos != len(tokens):
            raise ValueError(f"the state holds {state.pos} tokens, not {len(tokens)}")
        self.tokens, self.state = list(tokens), state
