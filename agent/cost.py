"""Per-task token and cost accounting from a configurable price table.

Prices are per million tokens, by kind: `input` (prompt tokens not served from a cache),
`cached_input`, `output`. They come from `Settings.prices` (e.g. in config.toml:
`[prices] input = 0.14, cached_input = 0.028, output = 0.28`); with none set, cost is 0 and
the summary shows tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.model import Usage


@dataclass
class Tally:
    """Tokens (and cost) spent so far, per model name and in total."""

    prices: dict[str, dict[str, float]] = field(default_factory=dict)  # model → kind → $/M
    default_prices: dict[str, float] = field(default_factory=dict)
    by_model: dict[str, Usage] = field(default_factory=dict)
    calls: int = 0

    def add(self, model: str, usage: Usage) -> None:
        old = self.by_model.get(model, Usage())
        self.by_model[model] = Usage(old.prompt_tokens + usage.prompt_tokens,
                                     old.cached_tokens + usage.cached_tokens,
                                     old.completion_tokens + usage.completion_tokens)
        self.calls += 1

    @property
    def total_tokens(self) -> int:
        return sum(u.prompt_tokens + u.completion_tokens for u in self.by_model.values())

    def cost(self) -> float:
        return sum(cost_of(u, self.prices.get(m, self.default_prices))
                   for m, u in self.by_model.items())

    def summary(self) -> dict:
        rows = {m: {"prompt_tokens": u.prompt_tokens, "cached_tokens": u.cached_tokens,
                    "completion_tokens": u.completion_tokens,
                    "cost": round(cost_of(u, self.prices.get(m, self.default_prices)), 6)}
                for m, u in self.by_model.items()}
        return {"models": rows, "total_tokens": self.total_tokens,
                "cost": round(self.cost(), 6), "calls": self.calls}

    def line(self) -> str:
        """One line for the end of a task, e.g. `12,345 tokens (1,200 cached), $0.0021`."""
        cached = sum(u.cached_tokens for u in self.by_model.values())
        calls = f"{self.calls} model call" + ("" if self.calls == 1 else "s")
        text = f"{self.total_tokens:,} tokens ({cached:,} cached) in {calls}"
        if self.cost():
            text += f", ${self.cost():.4f}"
        return text


def cost_of(usage: Usage, prices: dict[str, float]) -> float:
    """Dollars for one usage record under a price table ($ per million tokens by kind)."""
    fresh = max(usage.prompt_tokens - usage.cached_tokens, 0)
    cached_price = prices.get("cached_input", prices.get("input", 0.0))
    return (fresh * prices.get("input", 0.0) + usage.cached_tokens * cached_price
            + usage.completion_tokens * prices.get("output", 0.0)) / 1e6
