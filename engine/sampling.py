"""Sampling parameters, the sampler (temperature, top-k, top-p, min-p, seed) and stop strings.

    p = SamplingParams(temperature=0)         # greedy: argmax, deterministic
    gen = generator_for(p.seed)               # torch.Generator, seeded or from os.urandom
    tok = sample(logits[-1], mask, p, gen)    # logits [vocab] float32, mask bool [vocab]
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """How one reply is generated (the engine's side of an OpenAI chat request)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy (deterministic).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus: smallest set with this mass.")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens; 0 = off.")
    min_p: float = Field(0.0, ge=0, le=1, description="Drop tokens below min_p × the top one.")
    seed: int | None = Field(None, description="Same seed, same prompt → same reply.")
    stop: list[str] = Field(default_factory=list,
                            description="Stop before any of these (in reasoning or content).")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    thinking: bool = Field(True, description="Reason first (`<think>` opener) or answer.")
    reasoning_effort: Literal["low", "medium", "high", "max"] | None = None
    tool_choice: str | dict[str, Any] = Field("auto", description="auto, none, required, a name.")
    response_format: dict[str, Any] | None = Field(
        None, description="OpenAI response_format: in the prompt; json_object masks the "
        "content to one JSON object, json_schema to one that satisfies the schema.")
    constrain: bool = Field(True, description="Mask tokens so tool-call markup stays valid.")
    speculate: bool = Field(True, description="Greedy requests (temperature 0): draft with the "
                            "MTP block and verify two tokens per forward, when the checkpoint "
                            "has MTP weights (same output, fewer forwards).")


def generator_for(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return g


def sample(logits: torch.Tensor, mask: np.ndarray | None, p: SamplingParams,
           gen: torch.Generator) -> int:
    """One token id from logits [vocab] (float32) restricted to `mask` (None: all allowed)."""
    logits = logits.detach().float().to("cpu", copy=True)  # the mask lives on the host
    if mask is not None:
        if not mask.any():
            raise RuntimeError("no token is allowed here (the constraint reached a dead end)")
        logits[~torch.from_numpy(mask)] = float("-inf")
    if p.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / p.temperature, dim=-1)
    if p.top_k:
        kth = torch.topk(probs, min(p.top_k, probs.numel())).values[-1]
        probs[probs < kth] = 0
    if p.min_p > 0:
        probs[probs < p.min_p * probs.max()] = 0
    if p.top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        # keep a token while the mass before it is below top_p (the top one always stays)
        drop = (torch.cumsum(sorted_p, 0) - sorted_p) >= p.top_p * sorted_p.sum()
        probs[order[drop]] = 0
    return int(torch.multinomial(probs, 1, generator=gen))


class StopStrings:
    """Holds back text that might begin a stop string; `feed(text) -> (safe text, hit)`.
    After a hit the text before the stop string is returned and nothing more is. The result
    does not depend on how the text is split (tokens)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.hit = False

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops or self.hit:
            return ("" if self.hit else text), self.hit
        buf = self.held + text
        # the stop that completes first (as if fed a character at a time); on a tie the longest
        hits = [(i + len(s), i) for s in self.stops if (i := buf.find(s)) >= 0]
        if hits:
            self.held, self.hit = "", True
            return buf[:min(hits)[1]], True
        keep = max((k for s in self.stops for k in range(1, min(len(s), len(buf)) + 1)
                    if buf.endswith(s[:k])), default=0)
        self.held = buf[len(buf) - keep:]
        return buf[:len(buf) - keep], False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out
