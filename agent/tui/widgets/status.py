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

    def record_usage(self, usage: dict, ttft: float | None = None,
                     gen_seconds: float | None = None) -> None:
        """Take one `usage` event: {"prompt_tokens", "cached_tokens", ...}.

        Backends that do not report speeds get them measured here: prefill from the time to
        the first token (`ttft`, fresh prompt tokens only), decode over `gen_seconds`.
        """
        prompt = usage.get("prompt_tokens") or 0
        cached = usage.get("cached_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        self.context_used = prompt + completion
        prefill, decode = usage.get("prefill_tps"), usage.get("decode_tps")
        if prefill is None and ttft and prompt > cached:
            prefill = (prompt - cached) / ttft
        if decode is None and gen_seconds and completion > 1:
            decode = completion / gen_seconds
        if prefill is not None:
            self.prefill_tps = prefill
        if decode is not None:
            self.decode_tps = decode
        if prompt:
            self.cache_reuse = cached / prompt
