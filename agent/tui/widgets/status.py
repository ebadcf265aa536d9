"""The status bar: model and backend, context used / window, speeds, cache reuse, KV, cost.

Plain attributes set by the app (attributes down); it redraws only when one changes, so an
idle app draws nothing.
"""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


def human_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class StatusBar(Static):
    model_name: reactive[str] = reactive("no model")
    backend: reactive[str] = reactive("")
    context_used: reactive[int] = reactive(0)
    context_window: reactive[int] = reactive(0)
    prefill_tps: reactive[float | None] = reactive(None)
    decode_tps: reactive[float | None] = reactive(None)
    cache_reuse: reactive[float | None] = reactive(None)  # cached / prompt tokens, last reply
    kv_bytes: reactive[int | None] = reactive(None)
    cost: reactive[float] = reactive(0.0)
    state: reactive[str] = reactive("idle")  # idle | working | loading | interrupting

    def render(self) -> str:
        speed = lambda v: "–" if v is None else f"{v:,.0f}"
        reuse = "–" if self.cache_reuse is None else f"{self.cache_reuse:.0%}"
        model = f"{self.model_name} ({self.backend})" if self.backend else self.model_name
        # Most important first: a narrow terminal wraps at part boundaries onto a second line.
        parts = [
            self.state,
            model,
            f"ctx {self.context_used:,}/{self.context_window:,}",
            f"${self.cost:.4f}",
            f"prefill {speed(self.prefill_tps)} tok/s",
            f"decode {speed(self.decode_tps)} tok/s",
            f"cache {reuse}",
            f"KV {human_bytes(self.kv_bytes)}",
        ]
        width = max(self.size.width, 20)
        lines = [parts[0]]
        for part in parts[1:]:
            if len(lines[-1]) + 3 + len(part) > width:
                lines.append(part)
            else:
                lines[-1] += " · " + part
        return "\n".join(lines)

    def record_usage(self, usage: dict) -> None:
        """Take one `usage` event from the agent: {"prompt_tokens", "cached_tokens", ...}."""
        prompt = usage.get("prompt_tokens") or 0
        self.context_used = prompt + (usage.get("completion_tokens") or 0)
        if usage.get("prefill_tps") is not None:
            self.prefill_tps = usage["prefill_tps"]
        if usage.get("decode_tps") is not None:
            self.decode_tps = usage["decode_tps"]
        if prompt:
            self.cache_reuse = (usage.get("cached_tokens") or 0) / prompt
