"""KV on disk: exact round trip; corrupt, truncated or mismatched files are never loaded."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from engine.kv.disk import KVDiskWarning, KVStore, model_identity
from engine.kv.prefix import extend


def _toks(n: int, seed: int) -> list[int]:
    return torch.randint(0, 1024, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    toks = _toks(300, 1)
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks), st, chunk=128)  # marks at 128 and 256
    store = KVStore(tmp_path_factory.mktemp("kv"), model_identity(tiny_model))
    return store, toks, st, store.save(toks, st)


def _next_logits(model, state, tok: int) -> torch.Tensor:
    return model(torch.tensor([tok]), state.copy())


def test_round_trip_reproduces_the_next_logits_exactly(tiny_model, saved):
    store, toks, st, _ = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, n = store.load(toks + [5, 6])
    assert n == 300 and sorted(got.marks) == sorted(st.marks)
    assert torch.equal(_next_logits(tiny_model, got, 5), _next_logits(tiny_model, st, 5))
    back = got.marks[256].restore(got)  # marks survive too: exact truncation after a load
    assert back.pos == 256


def test_other_prefixes_and_models_miss_quietly(tiny_model, saved):
    store, toks, _, _ = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(toks[:299]) == (None, 0)
        assert store.load([toks[0] + 1] + toks[1:]) == (None, 0)
        assert KVStore(store.root, "another-model").load(toks) == (None, 0)
    assert model_identity(tiny_model) != model_identity(_other_model())


def _other_model():
    from engine.config import preset
    from engine.weights.tiny import random_model
    return random_model(preset("tiny"), seed=1, mode="reference")


def _damaged_copy(saved, tmp_path, damage) -> KVStore:
    store, toks, _, path = saved
    other = KVStore(tmp_path, store.model_id)
    dest = other.path_for(toks)
    shutil.copy(path, dest)
    damage(dest)
    return other


def _flip_last_byte(p):
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0x01
    p.write_bytes(bytes(raw))


def _truncate(p):
    p.write_bytes(p.read_bytes()[:-100])


def _garbage(p):
    p.write_bytes(b"not a safetensors file")


@pytest.mark.parametrize("damage,why", [(_flip_last_byte, "checksum"), (_truncate, "unreadable"),
                                        (_garbage, "unreadable")])
def test_corrupt_files_are_ignored_with_a_warning(saved, tmp_path, damage, why):
    store = _damaged_copy(saved, tmp_path, damage)
    with pytest.warns(KVDiskWarning, match=why):
        assert store.load(saved[1]) == (None, 0)


def test_a_file_of_another_model_under_our_name_is_refused(saved, tmp_path):
    _, toks, st, _ = saved
    foreign = KVStore(tmp_path / "b", "another-model").save(toks, st)
    ours = KVStore(tmp_path / "a", saved[0].model_id)
    ours.root.mkdir()
    shutil.copy(foreign, ours.path_for(toks))
    with pytest.warns(KVDiskWarning, match="another model"):
        assert ours.load(toks) == (None, 0)


def test_falls_back_to_a_shorter_good_file(tiny_model, saved, tmp_path):
    store, toks, _, _ = saved
    mine = KVStore(tmp_path, store.model_id)
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks[:100]), st)
    mine.save(toks[:100], st)
    shutil.copy(saved[3], mine.path_for(toks))
    _flip_last_byte(mine.path_for(toks))
    with pytest.warns(KVDiskWarning):
        got, n = mine.load(toks)
    assert n == 100 and got.pos == 100


def test_writes_are_atomic(saved):
    store = saved[0]
    assert not list(store.root.glob(".tmp-*"))


def test_prefix_cache_with_disk_starts_a_second_run_warm(tiny_model, tmp_path):
    from engine.kv.prefix import PrefixCache

    toks = _toks(200, 50)
    disk = KVStore(tmp_path, model_identity(tiny_model))
    first = PrefixCache(disk=disk)
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks), st)
    first.store(toks, st)
    second = PrefixCache(disk=KVStore(tmp_path, model_identity(tiny_model)))  # a new process
    more = toks + _toks(20, 51)
    got, n = second.lookup(more)
    assert n == 200 and second.hits == 1
    lg = extend(tiny_model, torch.tensor(more[n:]), got)
    assert (lg[-1] - tiny_model(torch.tensor(more))[-1]).abs().max() <= 1e-5
    assert second.lookup(more)[1] == 200 and len(second) == 1  # now from memory
    assert PrefixCache(disk=KVStore(tmp_path, "other")).lookup(more) == (None, 0)


def test_a_resumed_conversation_that_diverges_finds_the_turns_before(tiny_model, tmp_path):
    """The last reply re-tokenizes differently after a restart: the saved sequence is still
    used up to the last mark before the divergence, exactly."""
    from engine.kv.prefix import PrefixCache

    toks = _toks(400, 60)
    first = PrefixCache(disk=KVStore(tmp_path, model_identity(tiny_model)))
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks), st, chunk=128)  # marks at 128, 256, 384
    first.store(toks, st)
    second = PrefixCache(disk=KVStore(tmp_path, model_identity(tiny_model)))
    other = toks[:300] + _toks(30, 61)  # diverges at 300
    got, n = second.lookup(other)
    assert n == 256 and second.hits == 1  # the mark before 300
    lg = extend(tiny_model, torch.tensor(other[n:]), got)
    assert (lg[-1] - tiny_model(torch.tensor(other))[-1]).abs().max() <= 1e-5
    assert PrefixCache(disk=KVStore(tmp_path, model_identity(tiny_model))).lookup(
        _toks(200, 62)) == (None, 0)  # nothing shared: nothing read


def test_saving_a_longer_sequence_removes_its_prefixes_and_keeps_to_the_budget(tiny_model,
                                                                               tmp_path):
    store = KVStore(tmp_path, model_identity(tiny_model))
    toks = _toks(300, 70)
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks[:150]), st)
    short = store.save(toks[:150], st)
    extend(tiny_model, torch.tensor(toks[150:]), st)
    long = store.save(toks, st)
    assert not short.exists() and long.exists()  # the long one's marks cover the short one
    other = _toks(200, 71)
    st2 = tiny_model.new_state()
    extend(tiny_model, torch.tensor(other), st2)
    capped = KVStore(tmp_path, model_identity(tiny_model), budget_bytes=long.stat().st_size + 1)
    newest = capped.save(other, st2)
    assert newest.exists() and not long.exists()  # the oldest went to stay under the budget


def test_a_loaded_state_lands_on_each_block_s_device(tiny_model, tmp_path):
    """`devices` sends each block's state (and its marks') where the block runs ('meta' stands
    in for a second device on this machine)."""
    toks = _toks(300, 80)
    st = tiny_model.new_state()
    extend(tiny_model, torch.tensor(toks), st, chunk=128)
    KVStore(tmp_path, model_identity(tiny_model)).save(toks, st)
    n = len(st.layers) + len(st.mtp)
    devices = ["cpu"] + ["meta"] * (n - 1)
    got, m = KVStore(tmp_path, model_identity(tiny_model), devices=devices).load(toks + [1])
    assert m == 300 and got.layers[0].window.device.type == "cpu"
    moved = [got.layers[-1], got.marks[256].layers[-1]]
    assert all(s.window.device.type == "meta" for s in moved)
    assert got.layers[-1].comp.rows.device.type == "meta" and got.layers[-1].pos == 300
