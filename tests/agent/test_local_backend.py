"""The local-engine adapter: the engine's own events (engine.events) become agent events, and
an engine that cannot be imported is reported with the real ImportError."""

from __future__ import annotations

import sys

import pytest

from agent.backends import local
from agent.config import Settings
from agent.model import BackendUnavailable, Done, FormatError, Reply, ToolCall, Usage
from engine import events as ev


class FakeEngine:
    context_window = 1_048_576

    def __init__(self, events):
        self.events, self.calls = events, []

    def stream(self, messages, tools, **kw):
        self.calls.append(kw)
        yield from self.events

    def count_tokens(self, messages, tools):
        return 7 * len(messages)


def test_engine_events_become_agent_events():
    engine = FakeEngine([ev.ReasoningDelta("hmm"), ev.TextDelta("ok"),
                         ev.ToolCallStarted(0, "read"), ev.ToolCallArgDelta(0, '{"path":'),
                         ev.ToolCallArgDelta(0, '"a"}'),
                         ev.ToolCallFinished(0, "read", {"path": "a"}, "<dsml>"),
                         ev.FormatError("<bad", "unclosed invoke"),
                         ev.Usage(100, 80, 12, 5000.0, 40.0), ev.Done("tool_calls", [5, 6])])
    model = local.EngineModel(engine, "local:x")
    reply = Reply()
    events = list(model.stream([{"role": "user", "content": "hi"}], [], thinking=False))
    for e in events:
        reply.add(e)
    assert (reply.reasoning, reply.text) == ("hmm", "ok")
    assert reply.tool_calls == [ToolCall("call_0_0", "read", {"path": "a"})]
    again = [e for e in model.stream([{"role": "user", "content": "hi"}], []) if
             isinstance(e, ToolCall)]
    assert again[0].id == "call_1_0"  # a later reply's calls get ids of their own
    assert reply.format_errors == [FormatError("unclosed invoke", "<bad")]
    assert reply.usage == Usage(100, 80, 12, 5000.0, 40.0)
    assert isinstance(events[-1], Done) and reply.finish_reason == "tool_calls"
    assert reply.tokens == [5, 6]
    assert engine.calls[0]["thinking"] is False
    assert model.context_window == 1_048_576 and model.count_tokens([{}, {}], []) == 14


def test_every_engine_event_is_converted_or_deliberately_dropped():
    """A new event class in engine/events.py must be handled here (or dropped on purpose)."""
    dropped = {ev.ToolCallStarted, ev.ToolCallArgDelta}
    samples = {ev.ReasoningDelta: ("r",), ev.TextDelta: ("t",), ev.ToolCallStarted: (0, "x"),
               ev.ToolCallArgDelta: (0, "{"), ev.ToolCallFinished: (0, "x", {}, ""),
               ev.FormatError: ("", "why"), ev.Usage: (1, 0, 1, 1.0, 1.0), ev.Done: ("stop",)}
    assert set(samples) == set(ev.Event.__args__)
    for cls, fields in samples.items():
        assert (local.convert(cls(*fields)) is None) == (cls in dropped), cls


def test_an_engine_that_cannot_be_imported_names_the_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "engine.api", None)  # `import engine.api` now fails
    with pytest.raises(BackendUnavailable) as info:
        local.load(Settings(model=str(tmp_path)))
    message = str(info.value)
    assert "cannot be imported (ModuleNotFoundError: " in message and "engine.api" in message
    assert "--endpoint URL" in message


# ---- the real engine behind EngineModel (a tiny random checkpoint) ----------------------------

@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    pytest.importorskip("torch")
    from engine.weights.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0,
                     tokenizer="small")


class _Held:
    """A layer and whether a resident float copy holds its rows (its own, or its group's
    `merged` one: engine.weights.placement)."""

    def __init__(self, mod, merged: bool):
        self.mod, self.resident = mod, mod.resident if not merged else True


def _linears(model: local.EngineModel) -> list:
    """The FP8/FP4 Linear layers and experts: the ones a resident float copy is made for."""
    from engine.layers.linear import Linear
    from engine.layers.moe import Experts
    from engine.weights.placement import _groups

    m = model.engine.model
    merged = {id(lin) for g in _groups(m) if g[0].merged is not None for lin in g}
    found = [_Held(x, id(x) in merged) for x in m.modules()
             if isinstance(x, Linear | Experts) and x.fmt in ("fp8", "fp4")]
    assert any(isinstance(h.mod, Linear) for h in found), "the tiny model has quantized Linears"
    return found


def test_stats_report_the_kv_bytes_the_engine_holds(tiny_ckpt):
    import torch

    from engine.kv.prefix import extend, state_bytes

    model = local.load(Settings(model=str(tiny_ckpt), resident="off"))
    assert model.stats()["kv_bytes"] == 0  # nothing generated yet
    reply = Reply()
    for e in model.stream([{"role": "user", "content": "hello there"}], [], thinking=False,
                          max_tokens=5):
        reply.add(e)
    stats = model.stats()
    assert stats["kv_bytes"] > 0 and stats["kv_bytes"] == model.engine.kv_bytes()
    # the cache holds the prompt and the reply but its last token (never fed back)
    n = reply.usage.prompt_tokens + reply.usage.completion_tokens - 1
    assert stats["kv_sequences"] == 1 and stats["kv_tokens"] == n
    # independently: the state a fresh prefill of those tokens builds has the same bytes
    ids = model.engine.gen.cache.sequences()[0]
    state = model.engine.model.new_state()
    extend(model.engine.model, torch.tensor(ids), state)
    assert state_bytes(state) == stats["kv_bytes"]
    # a second, unrelated conversation is another cached sequence: more bytes
    list(model.stream([{"role": "user", "content": "zebra"}], [], thinking=False, max_tokens=3))
    after = model.stats()
    assert after["kv_sequences"] == 2 and after["kv_bytes"] > stats["kv_bytes"]
    assert after["kv_bytes"] == model.engine.kv_bytes()


@pytest.mark.parametrize("setting, expect", [("on", True), ("off", False)])
def test_resident_setting_reaches_the_engine(tiny_ckpt, tmp_path, monkeypatch, setting, expect):
    from agent.backends import make_model
    from agent.config import ConfigSources, load_settings

    # the engine's own fallback says the opposite: only the setting can win
    monkeypatch.setenv("FLASHCODE_RESIDENT", "0" if expect else "1")
    project = tmp_path / ".flashcode.toml"
    project.write_text(f'model = "{tiny_ckpt}"\nresident = "{setting}"\n')
    model = make_model(load_settings(ConfigSources(None, project, {}, project_trusted=True)))
    assert {m.resident is not None for m in _linears(model)} == {expect}


def test_resident_auto_leaves_it_to_the_engine(tiny_ckpt, monkeypatch):
    from agent.config import ConfigSources, load_settings

    # the old variable still works through the settings' environment layer...
    settings = load_settings(ConfigSources(None, None, {"FLASHCODE_RESIDENT": "0"}))
    assert settings.resident == "off"
    # ...and with the setting on auto the engine reads it itself (auto -> resident=None)
    monkeypatch.setenv("FLASHCODE_RESIDENT", "0")
    model = local.load(Settings(model=str(tiny_ckpt), resident="auto"))
    assert all(m.resident is None for m in _linears(model))
    monkeypatch.setenv("FLASHCODE_RESIDENT", "1")
    model = local.load(Settings(model=str(tiny_ckpt)))
    assert all(m.resident is not None for m in _linears(model))


def test_a_second_run_starts_warm_from_the_saved_state(tiny_ckpt, tmp_path):
    """Two processes in all but name: the second engine finds the first one's prompt state on
    disk and prefills only what follows it (that the reused state is exact is
    tests/engine/test_kvdisk.py's business)."""
    settings = Settings(model=str(tiny_ckpt), resident="off", kv_dir=str(tmp_path / "kv"))
    convo = [{"role": "user", "content": "hello there, " * 40}]

    def turn(model, messages):
        reply = Reply()
        for e in model.stream(messages, [], thinking=False, max_tokens=4):
            reply.add(e)
        return reply

    first = turn(local.load(settings), convo)
    assert first.usage.cached_tokens == 0
    saved = list((tmp_path / "kv").glob("*/*.kvs"))
    assert len(saved) == 1
    later = [*convo, first.message(), {"role": "user", "content": "and now? " * 20}]
    warm = turn(local.load(settings), later)
    cold = turn(local.load(Settings(model=str(tiny_ckpt), resident="off", kv_dir="off")), later)
    # the reply re-tokenizes from its text in a new process: reuse goes back to the last mark
    assert warm.usage.cached_tokens >= first.usage.prompt_tokens // 128 * 128 > 0
    assert cold.usage.cached_tokens == 0 and warm.usage.prompt_tokens == cold.usage.prompt_tokens


def test_the_kv_dir_setting_defaults_to_the_xdg_cache_and_can_be_off(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert local.kv_dir(Settings()) == str(tmp_path / "flashcode" / "kv")
    assert local.kv_dir(Settings(kv_dir="off")) is None
    assert local.kv_dir(Settings(kv_dir="~/kv")).endswith("/kv")


def test_eager_flag_reaches_the_engine_decoder(tiny_ckpt, tmp_path):
    """`--eager` is the `decode` setting (plain strings: the agent never imports torch for
    it); the engine's Decoder runs the mode the setting names."""
    import argparse

    from agent.cli.args import add_model_flags, load

    p = argparse.ArgumentParser()
    add_model_flags(p)
    args = p.parse_args(["--eager", "-C", str(tmp_path)])
    assert load(args)[0].decode == "eager"
    assert load(p.parse_args(["-C", str(tmp_path)]))[0].decode == "auto"
    model = local.load(Settings(model=str(tiny_ckpt), resident="off", decode="eager"))
    assert model.engine.gen.decoder.mode == "eager"


def test_serve_eager_flag_reaches_engine_load(monkeypatch):
    """`flashcode serve --eager`: the mode as a plain string, down to Engine.load."""
    import engine.serve.server as server
    from agent.cli.main import build_parser

    seen = {}
    monkeypatch.setattr(server, "main", lambda *a: seen.setdefault("decode", a[-1]) and 0)
    for argv, want in ((["serve", "--model", "m", "--eager"], "eager"),
                       (["serve", "--model", "m"], None)):
        seen.clear()
        a = build_parser().parse_args(argv)
        a.handler(a)
        assert seen["decode"] == want
