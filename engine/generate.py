"""The prefill/decode loop: prompt ids in, typed events out (engine/events.py).

    gen = Generator(model, tokenizer, PrefixCache())
    for event in gen.run(prompt_ids, tools, SamplingParams(temperature=0, max_tokens=64)):
        ...   # ReasoningDelta | TextDelta | ToolCall* | FormatError, then Usage, then Done

Each step masks the logits with the reply's grammar (engine/chat/guide.py: tool calls that fit
their schemas, a JSON response_format), samples (sampling.py), and takes the ids the grammar
then forces without sampling; the new ids go to TokenReplyParser and into the model in one
forward, while the next mask is computed on a worker thread. Text that may begin a stop string
is held back. Every prefill goes through the PrefixCache (lookup, then store what the state
consumed). One sequence at a time: the caller (api.Engine) serialises calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from engine.chat.guide import guide_for
from engine.chat.parse import TokenReplyParser
from engine.chat.tokenizer import Tokenizer
from engine.decode import Decoder
from engine.events import Done, Event, ReasoningDelta, TextDelta, Usage
from engine.kv.prefix import PrefixCache, extend
from engine.kv.state import ModelState
from engine.model import Transformer
from engine.sampling import SamplingParams, StopStrings, generator_for, sample
from engine.speculate import Stepper


class _StopGate:
    """Stop strings over the reasoning and the content streams, each held back separately;
    any other event first releases what is held (so order is kept)."""

    def __init__(self, stops: list[str]) -> None:
        self.gates = {ReasoningDelta: StopStrings(stops), TextDelta: StopStrings(stops)}
        self.hit = False

    def pass_(self, ev: Event) -> list[Event]:
        gate = self.gates.get(type(ev))
        if gate is None:
            return [*self.release(), ev]
        out = [] if type(ev) is TextDelta else self._release_one(TextDelta)
        text, self.hit = gate.feed(ev.text)
        return out + ([type(ev)(text)] if text else [])

    def _release_one(self, cls) -> list[Event]:
        text = self.gates[cls].flush()
        return [cls(text)] if text else []

    def release(self) -> list[Event]:
        return self._release_one(ReasoningDelta) + self._release_one(TextDelta)


def _feed(stepper: Stepper, toks: list[int]) -> torch.Tensor:
    """Logits after feeding `toks`: one forward for all of them when plain stepping (ids the
    grammar forced come several at a time), else one step per id."""
    if len(toks) > 1 and stepper.drafter is None and stepper.pending is None:
        ids = torch.tensor(toks, device=stepper.model.embed.weight.device)
        return stepper.model(ids, stepper.state)[-1]
    for t in toks:
        logits = stepper.next(t)
    return logits


class Generator:
    def __init__(self, model: Transformer, tokenizer: Tokenizer, cache: PrefixCache,
                 context_window: int | None = None, decode: str | None = None) -> None:
        self.model, self.tok, self.cache = model, tokenizer, cache
        self.decoder = Decoder(model, decode)  # eager, compiled or CUDA graphs (decode.py)
        self.vocab = model.cfg.vocab_size
        self.context_window = context_window or model.cfg.max_position_embeddings
        # unconstrained: only ids the tokenizer knows (the embedding may have padding rows)
        self.known = np.zeros(self.vocab, dtype=bool)
        self.known[:min(tokenizer.vocab_size, self.vocab)] = True
        # prefill in pieces: attention over S tokens at once costs S² memory (8k tokens of the
        # tiny model on CPU: 34 s in one piece, 4.5 s in pieces of 512)
        self.prefill_chunk = 512

    def constraint(self, tools: list, p: SamplingParams):
        """The reply's grammar mask (raises ValueError for a tool_choice naming no tool)."""
        if not p.constrain:
            return None
        return guide_for(self.tok).constraint(tools or [], p.tool_choice, p.response_format,
                                              p.thinking, self.vocab)

    def prefill(self, prompt: list[int], streams: list | None = None
                ) -> tuple[ModelState, torch.Tensor, int]:
        """State after the prompt, the last position's logits [vocab], tokens reused;
        `streams` receives the last chunk's streams and tokens (engine.kv.prefix.extend)."""
        state, n = self.cache.lookup(prompt)
        if state is not None and n >= len(prompt):  # all cached: step back one for logits
            try:
                state.truncate(len(prompt) - 1)
                n = len(prompt) - 1
            except ValueError:
                state, n = None, 0
        if state is None:
            state, n = self.model.new_state(), 0
        if state.pos != n:
            raise RuntimeError(f"prefix cache returned a state at {state.pos}, not {n}")
        # chunked, marking the state at 128-token boundaries so a later prompt that shares
        # only part of this one can be restored exactly (engine.kv.prefix)
        ids = torch.tensor(prompt[n:], device=self.model.embed.weight.device)
        logits = extend(self.model, ids, state, chunk=self.prefill_chunk,
                        last_only=True, streams=streams)[-1]
        return state, logits, n

    def run(self, prompt: list[int], tools: list, p: SamplingParams,
            constraint=None) -> Iterator[Event]:
        """Generate one reply to `prompt` (ids ending with the assistant opener)."""
        if constraint is None:
            constraint = self.constraint(tools, p)
        budget = self.context_window - len(prompt)
        if p.max_tokens is not None:
            budget = min(budget, p.max_tokens)
        t0 = time.perf_counter()
        spec = p.speculate and p.temperature == 0 and len(self.model.mtp) > 0
        chunk: list = []
        state, logits, cached = self.prefill(prompt, chunk if spec else None)
        stepper = Stepper(self.model, state, spec, *(chunk[0] if chunk else (None, None)),
                          decoder=self.decoder)
        t1 = time.perf_counter()
        fed = list(prompt)  # what `state` has consumed
        parser, gate = TokenReplyParser(self.tok, p.thinking), _StopGate(p.stop)
        rng, ids, final = generator_for(p.seed), [], []
        new = constraint.begin() if constraint is not None else []  # forced at the start
        try:
            while len(ids) < budget:
                if ids:  # feed the ids taken last; a reply's final ids are never fed
                    last = ids[len(fed) - len(prompt):]
                    logits = _feed(stepper, last)
                    fed += last
                if not new:
                    mask = constraint.mask() if constraint is not None else self.known
                    tok = sample(logits, mask, p, rng)
                    new = [tok, *(constraint.advance(tok) if constraint is not None else [])]
                for tok in new[:budget - len(ids)]:
                    ids.append(tok)
                    events = parser.step(tok)
                    for ev in events:
                        if not isinstance(ev, Done):
                            yield from gate.pass_(ev)
                        if gate.hit:
                            parser.finish("stop")
                            final = [Done("stop")]
                            break
                    if gate.hit or parser.parser.done:
                        final = final or [e for e in events if isinstance(e, Done)]
                        break
                new = []
                if gate.hit or parser.parser.done:
                    break
            else:  # "length" even if a call was cut (its FormatError says so)
                final = [e if not isinstance(e, Done) else Done("length")
                         for e in parser.finish("length")]
        finally:
            if constraint is not None:
                constraint.close()
            state = stepper.finish()
            if state.pos == len(fed):
                self.cache.store(fed, state)
        acc = stepper.stats.acceptance if stepper.drafter is not None else None
        yield from self._finish(gate, final, ids, (len(prompt), cached, t0, t1, acc))

    def _finish(self, gate: _StopGate, final: list[Event], ids: list[int],
                timing: tuple) -> Iterator[Event]:
        n_prompt, cached, t0, t1, acc = timing
        t2 = time.perf_counter()
        reason = "stop"
        for ev in final:
            if isinstance(ev, Done):
                reason = ev.finish_reason
            elif not gate.hit:
                yield from gate.pass_(ev)
        if gate.hit:
            reason = "stop"
        else:
            yield from gate.release()
        usage = Usage(n_prompt, cached, len(ids), (n_prompt - cached) / max(t1 - t0, 1e-9),
                      len(ids) / max(t2 - t1, 1e-9), acc)
        yield usage
        yield Done(reason, list(ids))
