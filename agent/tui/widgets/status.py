"""The status bar: model and backend, context used / window, speeds, cache reuse, KV, cost.

Plain attributes set by the app (attributes down); it redraws only when one changes, so an
idle app draws nothing.
"""

from __future__ import annotations

import time

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


SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


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
    streamed: reactive[int] = reactive(0)  # characters the model streamed in this turn
    started: float | None = None  # when the agent started working (clock())
    clock = staticmethod(time.monotonic)  # the snapshot tests stop it

    def start_work(self) -> None:
        self.started, self.streamed, self.state = self.clock(), 0, "working"

    def working_line(self) -> str:
        """`⠹ working 12s · ~340 tokens`: a spinner, the time and the text streamed so far
        (about 4 characters a token), redrawn by the app's timer while the agent works."""
        elapsed = self.clock() - (self.started or self.clock())
        frame = SPINNER[int(elapsed * 8) % len(SPINNER)]
        return f"{frame} working {elapsed:.0f}s · ~{self.streamed // 4:,} tokens"

    def render(self) -> str:
        speed = lambda v: "–" if v is None else f"{v:,.0f}"
        reuse = "–" if self.cache_reuse is None else f"{self.cache_reuse:.0%}"
        model = f"{self.model_name} ({self.backend})" if self.backend else self.model_name
        # Most important first: a narrow terminal wraps at part boundaries onto a second line.
        parts = [
            self.working_line() if self.state == "working" else self.state,
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

        A backend that does not report its decode speed gets it measured here over
        `gen_seconds`. Prefill is shown only as the backend reports it (the local engine): for
        an endpoint, the time to the first token is mostly network, queue and the server's
        cache, not prefill, and a rate from it would be meaningless.
        """
        prompt = usage.get("prompt_tokens") or 0
        cached = usage.get("cached_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        self.context_used = prompt + completion
        prefill, decode = usage.get("prefill_tps"), usage.get("decode_tps")
        if decode is None and gen_seconds and completion > 1:
            decode = completion / gen_seconds
        self.prefill_tps = prefill
        if decode is not None:
            self.decode_tps = decode
        if prompt:
            self.cache_reuse = cached / prompt
