"""MTP speculative decoding (greedy): the MTP block drafts token P+1 from the main model's final
streams at P-1 and token P; one main forward over [t_P, draft] verifies it. `Stepper` runs it
under the generation loop (engine/generate.py); `greedy` is the plain reference it must match.

Invariant between steps: the main state holds t_0..t_{P-1}; `last` = streams of P-1 [1, n, D];
t_P is the token just sampled; the MTP state holds pairs (streams_i, t_{i+1}) up to i = P-2,
and `backlog` the pairs it still has to see before drafting.
  accept (the next token sampled is the draft): L_{P+1} came with the same forward; 2 tokens
          per forward
  reject: roll the main state back to P+1 (one token; when that token closed a compressor
          window, restore the light mark taken before and rerun t_P)
Output equals plain greedy decoding (up to float ties between a 1- and a 2-token forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.kv.prefix import Mark
from engine.kv.state import ModelState


def _ids(model, ids: list[int]) -> torch.Tensor:
    """Token ids [S] on the weights' device."""
    return torch.tensor(ids, device=model.embed.weight.device)


@dataclass
class SpecStats:
    drafted: int = 0
    accepted: int = 0
    forwards: int = 0      # main-model forward calls after the prefill
    tokens: int = 0        # tokens emitted after the prefill's first one

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class MTPDrafter:
    """Feeds the MTP block its pairs in order and proposes the greedy next-next token."""

    def __init__(self, model, state: ModelState):
        self.model, self.state = model, state
        self.backlog: list[tuple[torch.Tensor, int]] = []  # (streams [1, n, D], next token)

    def feed(self, streams: torch.Tensor, next_tokens: list[int]) -> None:
        for i, t in enumerate(next_tokens):
            self.backlog.append((streams[i:i + 1], t))

    def propose(self, last: torch.Tensor, nxt: int) -> int:
        self.feed(last, [nxt])
        s = torch.cat([b[0] for b in self.backlog])
        t = _ids(self.model, [b[1] for b in self.backlog])
        self.backlog = []
        return int(self.model.mtp_logits(s, t, self.state)[-1].argmax())


def _step(model, state: ModelState, nxt: int, draft: int):
    """Verify `draft` after `nxt`: (streams [2, n, D], logits [2, V]); on a reject the state
    is rolled back to hold just `nxt`, and streams[:1] stay valid."""
    closes = any(lay.comp is not None and (lay.pos + 2) // lay.comp.ratio != (lay.pos + 1)
                 // lay.comp.ratio for lay in state.layers)
    mark = Mark.of(state) if closes else None
    x = model.streams(_ids(model, [nxt, draft]), state)
    return x, model.logits(x), mark


def _roll_back(model, state: ModelState, mark: Mark | None, nxt: int) -> ModelState:
    if mark is None:
        state.truncate(state.pos - 1)
        return state
    back = mark.restore(state)
    back.mtp = state.mtp  # the MTP states are live (the drafter's); the mark's are older
    model.streams(_ids(model, [nxt]), back)
    return back


@torch.no_grad()
def greedy(model, prompt: list[int], max_new: int) -> list[int]:
    """Plain greedy decoding, one token per forward (the reference speculation must match)."""
    state = model.new_state()
    lg = model(_ids(model, prompt), state)
    out = [int(lg[-1].argmax())]
    while len(out) < max_new:
        out.append(int(model(_ids(model, out[-1:]), state)[-1].argmax()))
    return out


class Stepper:
    """Decode one token at a time for a sampling loop, with MTP speculation under the hood
    (engine/generate.py, greedy requests): `next(tok)` -> logits [vocab] after feeding `tok`.

    Each fresh step verifies [tok, draft] in one forward and returns the logits after `tok`;
    when the loop's next token is the draft, its logits are already there (accept), else the
    state drops the draft (reject) and a fresh step runs. The drafter's MTP state is its own,
    fed with the pairs of the prompt's last chunk (the MTP block is sliding-window, so its
    relative positions are what matter). `finish()` -> the state holding exactly what was fed.
    Plain stepping (spec=False) is one decode step per token, through `decoder` (an
    engine.decode.Decoder) when given."""

    def __init__(self, model, state: ModelState, spec: bool, streams: torch.Tensor | None = None,
                 chunk: list[int] | None = None, decoder=None):
        self.model, self.state, self.stats = model, state, SpecStats()
        self.decoder = decoder  # runs plain steps (engine/decode.py); None: model(token)
        self.drafter = None
        if spec and streams is not None and len(model.mtp):
            self.drafter = MTPDrafter(model, ModelState([], [b.attn.new_state()
                                                             for b in model.mtp]))
            self.drafter.feed(streams[:-1], chunk[1:])
        self.last = None if streams is None else streams[-1:]
        self.pending = None  # (tok, draft, streams [2, n, D], logits [2, V], mark)

    @torch.no_grad()
    def next(self, tok: int) -> torch.Tensor:
        if self.pending is not None:
            prev, draft, xs, lg, mark = self.pending
            self.pending = None
            if tok == draft:
                self.stats.accepted += 1
                self.stats.tokens += 1
                self.drafter.feed(xs[:1], [draft])
                self.last = xs[1:]
                return lg[1]
            self.state = _roll_back(self.model, self.state, mark, prev)
            self.last = xs[:1]
        if self.drafter is None:
            if self.decoder is not None:
                return self.decoder.step(self.state, tok)
            return self.model(_ids(self.model, [tok]), self.state)[-1]
        draft = self.drafter.propose(self.last, tok)
        xs, lg, mark = _step(self.model, self.state, tok, draft)
        self.stats.forwards, self.stats.drafted = self.stats.forwards + 1, self.stats.drafted + 1
        self.stats.tokens += 1
        self.pending = (tok, draft, xs, lg, mark)
        return lg[0]

    def finish(self) -> ModelState:
        """Drop an unverified draft; the state then holds every token passed to `next`."""
        if self.pending is not None:
            prev, _, _, _, mark = self.pending
            self.pending = None
            self.state = _roll_back(self.model, self.state, mark, prev)
        return self.state
