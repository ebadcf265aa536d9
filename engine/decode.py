"""The decode step as a generation loop runs it: eagerly, compiled, or captured as a CUDA graph.

    dec = Decoder(model)                 # mode: FLASHCODE_DECODE or "auto"
    logits = dec.step(state, token_id)   # [vocab] float32; the state holds one more token

Modes (`Transformer.decode_step` is the one function all of them run):
  eager    the step as written, kernels from the registry (Triton on CUDA, twins on the CPU)
  compile  torch.compile(fullgraph=True): inductor fuses the twins into its own kernels. On
           CUDA each state's step is then captured once as a CUDA graph and replayed (again
           whenever its buffers grow, or another state comes): one launch per token. On the
           CPU the kernels run from inductor's C++ wrapper (cpp_wrapper), not from generated
           Python: 7-11 % less per token at 1K-4K on the bench model; and fp16 weights are
           read by engine/kernels/gemv_f16.py's op (built once with g++, AVX-512 CPUs; off
           with FLASHCODE_GEMV_F16=0), ~25 % less per token than inductor's own loop. The
           inductor cache (FLASHCODE_COMPILE_CACHE, default ~/.cache/flashcode/inductor)
           keeps the compiled code across processes.
  auto     compile on CUDA; eager on the CPU, where a cold compile costs more than a short
           session saves (bench/engine.py's 6-block model on 2 shared cores: 111-158 s cold,
           4-20 s from the inductor cache, for ~8 ms saved per token): opt in with "compile".
Routed experts held apart from their block (engine/offload.py) run eagerly: their step
crosses devices.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from engine.kernels import gemv_f16
from engine.kv.state import ModelState
from engine.weights.placement import layout_of, resident_weights

MODES = ("auto", "eager", "compile")


def _devices(model) -> set[torch.device]:
    return {p.device for p in model.parameters()}


def choose(model, mode: str | None = None) -> str:
    """'eager' or 'compile' for `mode` (default: FLASHCODE_DECODE, else auto)."""
    mode = mode or os.environ.get("FLASHCODE_DECODE", "") or "auto"
    if mode not in MODES:
        raise ValueError(f"decode: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if any(b.ffn.experts.w1_weight.device != b.attn_norm.weight.device for b in model.layers):
        return "eager"
    if mode == "auto":
        return "compile" if model.embed.weight.device.type == "cuda" else "eager"
    return mode


class Decoder:
    """One token at a time through `model.decode_step`; `report(line)` hears the first
    compile's time (default: stderr)."""

    def __init__(self, model, mode: str | None = None, report=None):
        self.model, self.mode = model, choose(model, mode)
        self.report = report or (lambda line: print(line, file=sys.stderr))
        dev = model.embed.weight.device
        self.graphs = self.mode == "compile" and dev.type == "cuda" and _devices(model) == {dev}
        self._tok = torch.zeros(1, dtype=torch.long, device=dev)   # the step's inputs
        self._t = torch.zeros(1, dtype=torch.long, device=dev)
        self._fn = None
        self._graph = self._out = self._key = None
        self.compile_seconds: float | None = None

    @torch.no_grad()
    def step(self, state: ModelState, token: int) -> torch.Tensor:
        """Feed `token` at state.pos: -> logits [vocab] for the next position."""
        state.reserve(state.pos + 1)
        self._tok.fill_(token)
        self._t.fill_(state.pos)
        if self.mode == "eager":
            out = self.model.decode_step(self._tok, self._t, state)
        elif self.graphs:
            out = self._replay(state).clone()  # the graph's output buffer is rewritten
        else:
            out = self._compiled(state)(self._tok, self._t, state)
        for s in state.layers:
            s.pos += 1
        return out[0]

    def _compiled(self, state: ModelState):
        if self._fn is not None:
            return self._fn
        # ours, not inductor's /tmp default (which torch may already have written to environ)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.environ.get("FLASHCODE_COMPILE_CACHE") or str(
            Path.home() / ".cache" / "flashcode" / "inductor")
        if self.model.embed.weight.device.type == "cpu" and layout_of(self.model) == "packed":
            # fbgemm's packs are not traceable; called as an opaque custom op they made the
            # step 3-6 % slower than this layout (its GEMV reads ~9 GB/s, inductor's ~12)
            resident_weights(self.model, layout="plain")
        _mark_dynamic(state)
        # On the CPU the step runs its kernels from C++ (inductor's cpp_wrapper) rather than
        # from a generated Python function: ~0.7-1.1 ms less per step at 1K-4K on the bench
        # model (~1.5 ms of Python per step otherwise). CUDA replays a graph: no wrapper runs.
        cpu = self.model.embed.weight.device.type == "cpu"
        if cpu:  # fp16 weights stream through engine/kernels/gemv_f16.py's op where it builds
            gemv_f16.available()
        fn = torch.compile(self.model.decode_step, fullgraph=True,
                           options={"cpp_wrapper": True} if cpu else None)
        t0 = time.perf_counter()
        fn(self._tok, self._t, state)  # compiles; idempotent, so running it is harmless
        self.compile_seconds = time.perf_counter() - t0
        self.report(f"flashcode: decode step compiled in {self.compile_seconds:.1f} s "
                    f"(inductor cache {os.environ['TORCHINDUCTOR_CACHE_DIR']})")
        self._fn = fn
        return fn

    def _replay(self, state: ModelState) -> torch.Tensor:
        """The step as a CUDA graph, captured for this state's buffers (their addresses are
        baked in): again when they change (a new state, or one grown by `reserve`)."""
        key = _addresses(state)
        if key != self._key:
            fn = self._compiled(state)
            self._graph = self._out = None  # free the old graph's pool first
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up (idempotent: the same writes as replay)
                fn(self._tok, self._t, state)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._out = fn(self._tok, self._t, state)
            self._graph, self._key = graph, key
        self._graph.replay()
        return self._out


def _state_tensors(state: ModelState):
    for s in state.layers:
        yield from s.window.planes
        for c in s.compressors():
            yield c.kv
            yield c.gate
            yield from c.rows.planes


def _addresses(state: ModelState) -> tuple:
    return tuple(t.data_ptr() for t in _state_tensors(state))


def _mark_dynamic(state: ModelState) -> None:
    """Compile once for every capacity: the compressed rows' count is a symbolic size."""
    for s in state.layers:
        for c in s.compressors():
            for p in c.rows.planes:
                torch._dynamo.mark_dynamic(p, 0)
