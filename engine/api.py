"""`Engine`: the surface the agent and the server use.

    engine = Engine.load("DIR")                      # config.json, shards, tokenizer.json
    for ev in engine.stream(messages, tools, SamplingParams(temperature=0), max_tokens=64):
        ...                                          # engine.events, ending Usage, Done
    engine.count_tokens(messages, tools); engine.context_window; engine.kv_stats()

`messages` are OpenAI-style dicts or engine.chat.render messages; `tools` OpenAI function specs.
Keyword arguments override fields of `params` (the agent adapter passes thinking=,
max_tokens=, response_format=). One sequence runs at a time: `stream` holds a lock while it
generates, so concurrent callers queue (close or drop an abandoned stream to free it).
`prepare` does the checks that can fail on bad input (PromptTooLong, ValueError) before any
generation, so a server can answer them with a 400.

At interpreter exit (or `close()`), the reply being generated stops at its next token and no
thread is left inside the model: Python ends daemon threads at finalization with pthread_exit,
and one caught inside torch's C++ aborts the whole process ("terminate called without an active
exception", exit 134). Generation runs model code only while holding `_inside`, which `close`
takes for good.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.chat.guide import ReplyConstraint, guide_for
from engine.chat.render import System, encode_conversation, messages_from_openai
from engine.chat.tokenizer import Tokenizer
from engine.events import Event
from engine.generate import Generator
from engine.kv.prefix import PrefixCache
from engine.sampling import SamplingParams
from engine.weights.memplan import available_memory
from engine.weights.placement import resident_bytes, resident_weights

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resident_plan(model, resident: bool | None = None, available: int | None = None) -> bool:
    """Whether to keep resident float weights: `resident` if given, else FLASHCODE_RESIDENT
    (0/1), else when the model is on the CPU and the copies take at most half of `available`
    (default: what the OS reports)."""
    if resident is None and os.environ.get("FLASHCODE_RESIDENT", "") not in ("", "auto"):
        resident = os.environ["FLASHCODE_RESIDENT"] not in ("0", "false", "no", "off")
    if resident is not None:
        return resident
    if next(model.parameters()).device.type != "cpu":
        return False
    avail = available if available is not None else available_memory()
    return avail is not None and 2 * resident_bytes(model) <= avail


def _kv_store(model, root: str | Path | None, budget: int):
    """A KVStore in `root`/<model identity>, or None without a root."""
    if not root:
        return None
    from engine.kv.disk import KVStore, model_identity

    ident = model_identity(model)
    devices = [b.attn.wkv.weight.device for b in (*model.layers, *model.mtp)]
    return KVStore(Path(root).expanduser() / ident[:16], ident, budget, devices)


class PromptTooLong(ValueError):
    """The prompt (plus the tokens asked for) does not fit the context window."""


class EngineClosed(RuntimeError):
    """The engine was closed (the process is exiting): no more tokens."""


@dataclass
class Prepared:
    """A checked request: prompt ids, tools, params and the reply's grammar mask."""
    ids: list[int]
    tools: list
    params: SamplingParams
    constraint: ReplyConstraint | None


class Engine:
    def __init__(self, model, tokenizer: Tokenizer, name: str = "flashcode",
                 context_window: int | None = None, cache: PrefixCache | None = None,
                 decode: str | None = None) -> None:
        tokenizer.check_vocab(model.cfg.vocab_size)
        window = context_window or model.cfg.max_position_embeddings
        if tokenizer.max_length:
            window = min(window, tokenizer.max_length)
        self.model, self.tok, self.name = model, tokenizer, name
        cache = cache if cache is not None else PrefixCache()  # an empty one is falsy
        self.gen = Generator(model, tokenizer, cache, window, decode)
        self.lock = threading.Lock()  # one sequence at a time
        self._inside = threading.Lock()  # held while a thread runs model code
        self._closed = threading.Event()
        self._orphans: list = []  # replies cut off by close(), never finished (see _step)
        ref = weakref.ref(self)  # a weak one: the exit hook must not keep the model alive
        atexit.register(lambda: (e := ref()) is not None and e.close())
        guide_for(tokenizer)  # llguidance's view of the vocabulary, now, not on the first request

    @classmethod
    def load(cls, path: str | Path, kernels: str = "auto", device_map: str | None = None,
             mode: str = "official", dtype: torch.dtype | str = torch.float32,
             context_window: int | None = None, name: str | None = None,
             resident: bool | None = None, kv_cache_bytes: int = 0,
             kv_dir: str | Path | None = None, kv_dir_bytes: int = 0,
             decode: str | None = None) -> Engine:
        """Weights, config and tokenizer from a checkpoint directory. `kernels`: auto (Triton
        on CUDA tensors, the PyTorch twins on the CPU), triton or ref (engine.kernels.registry).
        `device_map`: where the blocks and routed experts go (engine.weights.device_map: cpu,
        cuda:0, cuda:0,cuda:1, explicit units, auto). `resident`: keep dequantized float copies
        of the FP8/FP4 weights (several times faster on CPU); None = the FLASHCODE_RESIDENT
        environment variable (0/1), else yes when they fit in half the available memory (see
        `resident_plan`). Prompt states are cached (engine.kv.prefix) under `kv_cache_bytes` (0:
        the newest few) and, with `kv_dir`, saved there under `kv_dir_bytes` (engine.kv.disk),
        in a folder per model. `decode`: how decode steps run (engine.decode: auto, eager,
        compile; None = FLASHCODE_DECODE, else auto: compiled and CUDA graphs on CUDA, eager on
        the CPU)."""
        from engine.kernels import registry
        from engine.weights.loader import load as load_model

        registry.configure(None if kernels == "auto" else kernels)
        path = Path(path).expanduser()
        dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
        model = load_model(path, mode, dtype, device_map)
        if kernels == "triton":
            try:  # refuses a device Triton cannot run on
                registry.backend(model.embed.weight.device)
            except RuntimeError as e:
                raise ValueError(str(e)) from None
        if resident_plan(model, resident):
            resident_weights(model)
        cache = PrefixCache(kv_cache_bytes, disk=_kv_store(model, kv_dir, kv_dir_bytes))
        return cls(model, Tokenizer.from_dir(path), name or path.name, context_window, cache,
                   decode)

    @property
    def context_window(self) -> int:
        return self.gen.context_window

    @property
    def placement(self) -> str:
        """Where the weights are, in one line: 'layers.0-42 cuda:0; routed experts cpu'."""
        from engine.weights.device_map import describe

        dmap = getattr(self.model, "device_map", None) or {"layers.0": "cpu"}
        resident = any(getattr(m, "resident", None) is not None for m in self.model.modules())
        return describe(dmap) + ("; resident float weights" if resident else "")

    def encode(self, messages: list, tools: list | None, p: SamplingParams) -> list[int]:
        if messages and isinstance(messages[0], dict):
            messages = messages_from_openai(messages)
        messages = list(messages)
        if p.response_format:
            if messages and isinstance(messages[0], System):
                messages[0] = messages[0].model_copy(
                    update={"response_format": p.response_format})
            else:
                messages.insert(0, System(response_format=p.response_format))
        return encode_conversation(messages, self.tok, tools or None, p.thinking,
                                   p.reasoning_effort)

    def count_tokens(self, messages: list, tools: list | None = None) -> int:
        return len(self.encode(messages, tools, SamplingParams()))

    def prepare(self, messages: list, tools: list | None = None,
                params: SamplingParams | None = None, **overrides: Any) -> Prepared:
        """Validate and encode a request; raises PromptTooLong or ValueError on bad input."""
        p = params or SamplingParams()
        if overrides:
            p = SamplingParams(**{**p.model_dump(), **overrides})
        tools = list(tools or [])
        if not tools and p.tool_choice not in ("auto", "none"):
            raise ValueError(f"tool_choice {p.tool_choice!r} needs `tools`, and none were given")
        ids = self.encode(messages, tools, p)
        if ids and not 0 <= min(ids) <= max(ids) < self.model.cfg.vocab_size:
            raise ValueError(f"token_ids must lie in [0, {self.model.cfg.vocab_size})")
        want = len(ids) + (p.max_tokens or 1)
        if want > self.context_window:
            raise PromptTooLong(
                f"the prompt is {len(ids)} tokens"
                + (f" and max_tokens is {p.max_tokens}" if p.max_tokens else "")
                + f", but the model's context window is {self.context_window} tokens")
        return Prepared(ids, tools, p, self.gen.constraint(tools, p))

    def generate(self, req: Prepared) -> Iterator[Event]:
        """Run a prepared request (waits for the sequence before it). Raises EngineClosed
        once `close()` was called."""
        with self.lock:
            run = self.gen.run(req.ids, req.tools, req.params, req.constraint)
            try:
                while (ev := self._step(run)) is not None:
                    yield ev
            finally:  # finished here, under the lock: its tensors go before the next request
                self._step(run, finish=True)

    def _step(self, run: Iterator[Event], finish: bool = False) -> Event | None:
        """`run`'s next event (None at its end), or with `finish` its cleanup, run while
        holding `_inside`. After close() a reply is neither advanced nor finished (its cleanup
        is torch work too): it is kept, unfinished, until the process is gone."""
        while not self._inside.acquire(timeout=0.05):
            if self._closed.is_set():
                if finish:
                    self._orphans.append(run)
                    return None
                raise EngineClosed("the engine is shutting down")
        try:
            if finish:
                run.close()
                return None
            return next(run, None)
        finally:
            self._inside.release()

    def close(self) -> None:
        """Stop: the reply being generated ends at its next token (its stream raises
        EngineClosed), and no thread runs model code after this returns; later requests raise
        EngineClosed. Waits for the current token (or the prefill under way). Idempotent;
        called at interpreter exit."""
        if not self._closed.is_set():
            self._closed.set()
            self._inside.acquire()  # kept: nothing enters the model again

    def stream(self, messages: list, tools: list | None = None,
               params: SamplingParams | None = None, **overrides: Any) -> Iterator[Event]:
        """Events of one reply; see the module docstring."""
        yield from self.generate(self.prepare(messages, tools, params, **overrides))

    def kv_bytes(self) -> int:
        """Bytes of KV state the engine holds now: every sequence in the prefix cache (the
        last reply's state is stored there when it ends), as allocated.
        Unlocked: call it between streams or from the thread that is streaming."""
        return self.gen.cache.nbytes

    def kv_stats(self) -> dict[str, int]:
        """kv_bytes and the prefix cache's contents and counters, for a status line:
        {"kv_bytes", "kv_sequences", "kv_tokens" (summed over the sequences), "prefix_hits",
        "prefix_misses", "reused_tokens"}. Same threading rule as `kv_bytes`."""
        c = self.gen.cache
        seqs = c.sequences()
        out = {"kv_bytes": self.kv_bytes(), "kv_sequences": len(seqs),
               "kv_tokens": sum(map(len, seqs)), "prefix_hits": c.hits,
               "prefix_misses": c.misses, "reused_tokens": c.reused_tokens}
        return out
