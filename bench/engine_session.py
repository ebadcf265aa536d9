"""bench/engine.py's agent session: a prompt that grows by a tool result and the reply each
turn, prefilled with prefix reuse on (engine.kv.prefix) and, on some turns, off."""

from __future__ import annotations

import random
import time

import torch

from engine.kv.prefix import PrefixCache, extend


def _turn(model, prompt, n_reply, pc: PrefixCache | None):
    """Prefill (reusing what the cache has) and decode a reply: (reply, prefilled, ttft, lg)."""
    t = time.perf_counter()
    st, n = pc.lookup(prompt) if pc is not None else (None, 0)
    st = st if st is not None else model.new_state()
    lg = extend(model, torch.tensor(prompt[n:]), st, last_only=True)[-1]
    ttft = time.perf_counter() - t
    reply = [int(lg.argmax())]
    while len(reply) < n_reply:
        reply.append(int(model(torch.tensor(reply[-1:]), st)[-1].argmax()))
    if pc is not None:
        pc.store(prompt + reply[:-1], st)  # the last reply token is sampled, not yet run
    return reply, len(prompt) - n, ttft, lg


def agent_session(model, turns: int, sizes, n_reply: int, off_turns: set[int]):
    rng = random.Random(1)
    prompt = [rng.randrange(model.cfg.vocab_size) for _ in range(300)]  # system + task
    pc, rows = PrefixCache(), []
    for k in range(1, turns + 1):
        prompt = prompt + [rng.randrange(model.cfg.vocab_size)
                           for _ in range(rng.randint(*sizes))]  # the tool result
        reply, pre, ttft, lg = _turn(model, prompt, n_reply, pc)
        off = _turn(model, prompt, n_reply, None) if k in off_turns else None
        rows.append((k, len(prompt), pre, ttft, off, (reply, lg)))
        prompt = prompt + reply
    return rows, pc


def print_session(rows, pc):
    print("\n== agent session: prompt grows by a tool result (and the reply) each turn ==")
    print(f"{'turn':>4} {'prompt':>7} {'new':>6} {'reuse: prefilled':>16} {'ttft s':>7} "
          f"{'no reuse: prefilled':>19} {'ttft s':>7} {'same reply':>10} {'max |Δlogit|':>12}")
    prev = 300
    for k, n, pre, ttft, off, (reply, lg) in rows:
        new = n - prev
        if off is None:
            tail = f"{'-':>19} {'-':>7} {'-':>10} {'-':>12}"
        else:
            same = off[0] == reply
            tail = (f"{off[1]:>19} {off[2]:>7.2f} {str(same):>10} "
                    f"{(off[3] - lg).abs().max().item():>12.2e}")
        print(f"{k:>4} {n:>7} {new:>6} {pre:>16} {ttft:>7.2f} {tail}")
        prev = n + len(reply)
    print("(new = the tool result; with reuse the reply's last token, sampled but not yet run, "
          "is prefilled with it. max |Δlogit| = first-token logits, reuse vs none: different "
          "chunkings differ by ~1e-6, which can flip the indexer's top-k at long context)")
    print(f"prefix cache: {pc.hits} hits, {pc.reused_tokens} tokens reused, "
          f"{pc.nbytes / 2**20:.1f} MiB held")


