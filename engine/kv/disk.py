"""KV on disk: a sequence's `ModelState` saved under a hash of (model identity, token prefix), so
a resumed session or a second run on the same repository starts warm.

File: `<n:09d>-<digest>.kvs`, a safetensors file (tensors named like `L3.comp.rows`,
`M256.L3.window` for marks, `tokens` [n] int32) whose metadata carries the format version, the
model identity, n, and a SHA-256 over every tensor's bytes. Loading checks all of it; a file
that is corrupt, truncated, of another model or of other tokens is skipped with a
`KVDiskWarning`, never loaded. Writes go to a temporary file and are renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.kv.prefix import Mark, common_prefix
from engine.kv.rows import Rows
from engine.kv.state import CompressorState, LayerState, ModelState

VERSION = "flashcode-kv-2"  # 2: rows in the live state's formats (engine/kv/rows.py)


class KVDiskWarning(UserWarning):
    """A KV file was found but not used (corrupt, truncated, other model or tokens)."""


def model_identity(model) -> str:
    """SHA-256 of the config, numerics, dtype and a fingerprint of every parameter (name,
    shape, dtype, first and last bytes), so two random models of one config differ."""
    h = hashlib.sha256()
    h.update(model.cfg.model_dump_json().encode())
    h.update(json.dumps(vars(model.numerics), sort_keys=True).encode())
    h.update(str(model.dtype).encode())
    for name, p in model.named_parameters():
        raw = p.detach().reshape(-1).contiguous().view(torch.uint8)
        h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
        h.update(raw[:256].cpu().numpy().tobytes() + raw[-256:].cpu().numpy().tobytes())
    return h.hexdigest()


def prefix_digest(model_id: str, tokens) -> str:
    h = hashlib.sha256(model_id.encode())
    h.update(torch.tensor(list(tokens), dtype=torch.int32).numpy().tobytes())
    return h.hexdigest()[:40]


# ---- ModelState <-> flat tensors -------------------------------------------------------------

def _put_rows(rows: Rows, n: int, name: str, out: dict) -> dict:
    """Rows' planes (the pages holding n rows) as tensors `name.0`, `name.1`, ...; -> meta."""
    for i, p in enumerate(rows.copy(n).planes):
        out[f"{name}.{i}"] = p
    return {"fmt": rows.fmt, "width": rows.width, "rope": rows.rope, "planes": len(rows.planes)}


def _get_rows(t: dict, name: str, m: dict) -> Rows:
    return Rows(m["fmt"], tuple(t[f"{name}.{i}"] for i in range(m["planes"])), m["width"],
                m["rope"])


def _flatten(layers, prefix: str, out: dict[str, torch.Tensor], meta: list) -> None:
    for i, st in enumerate(layers):
        name = f"{prefix}L{i}"
        m = {"pos": st.pos, "window_size": st.window_size,
             "window": _put_rows(st.window, st.window_size, f"{name}.window", out)}
        for kind in ("comp", "index"):
            c = getattr(st, kind)
            if c is not None:
                out[f"{name}.{kind}.kv"], out[f"{name}.{kind}.gate"] = c.kv, c.gate
                keep = max(st.pos // c.ratio + 1, c.floor)
                m[kind] = {"ratio": c.ratio, "floor": c.floor,
                           "rows": _put_rows(c.rows, keep, f"{name}.{kind}.rows", out)}
        meta.append(m)


def _unflatten(t: dict[str, torch.Tensor], prefix: str, meta: list) -> list[LayerState]:
    layers = []
    for i, m in enumerate(meta):
        name = f"{prefix}L{i}"
        st = LayerState(m["window_size"], m["pos"], _get_rows(t, f"{name}.window", m["window"]))
        for kind in ("comp", "index"):
            if m.get(kind) is not None:
                c = m[kind]
                rows = _get_rows(t, f"{name}.{kind}.rows", c["rows"])
                setattr(st, kind, CompressorState(c["ratio"], t[f"{name}.{kind}.kv"],
                                                  t[f"{name}.{kind}.gate"], rows, c["floor"]))
        layers.append(st)
    return layers


def _payload_sha(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def encode(state: ModelState, tokens) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, structure) describing the state, its marks and its tokens."""
    tensors: dict[str, torch.Tensor] = {"tokens": torch.tensor(list(tokens), dtype=torch.int32)}
    struct: dict = {"layers": [], "mtp": [], "marks": {}}
    _flatten(state.layers, "", tensors, struct["layers"])
    _flatten(state.mtp, "T.", tensors, struct["mtp"])
    for p, mark in state.marks.items():
        ms = {"layers": [], "mtp": []}
        _flatten(mark.layers, f"M{p}.", tensors, ms["layers"])
        _flatten(mark.mtp, f"M{p}.T.", tensors, ms["mtp"])
        struct["marks"][str(p)] = ms
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}, \
        struct  # on the host, no shared storage


def decode(tensors: dict[str, torch.Tensor], struct: dict) -> ModelState:
    marks = {}
    for p, ms in struct["marks"].items():
        marks[int(p)] = Mark(int(p), tuple(_unflatten(tensors, f"M{p}.", ms["layers"])),
                             tuple(_unflatten(tensors, f"M{p}.T.", ms["mtp"])))
    return ModelState(_unflatten(tensors, "", struct["layers"]),
                      _unflatten(tensors, "T.", struct["mtp"]), marks)


# ---- the store -------------------------------------------------------------------------------

class KVStore:
    """Saved states of one model under `root`. Saving a sequence removes the files of its
    prefixes (its marks cover them), then the oldest files while over `budget_bytes` (0: no
    limit). `devices`: where each block's state goes on load (main blocks, then MTP; default
    the CPU)."""

    least = 128  # `nearest`: shorter shared prefixes are cheaper to prefill than to read

    def __init__(self, root: str | Path, model_id: str, budget_bytes: int = 0,
                 devices: list | None = None):
        self.root, self.model_id = Path(root), model_id
        self.budget_bytes, self.devices = budget_bytes, devices
        self._tokens_seen: dict[Path, tuple[tuple[int, int], list[int]]] = {}

    def path_for(self, tokens) -> Path:
        return self.root / f"{len(tokens):09d}-{prefix_digest(self.model_id, tokens)}.kvs"

    def save(self, tokens, state: ModelState) -> Path:
        """Write atomically (temp file + rename); returns the file's path."""
        if state.pos != len(tokens):
            raise ValueError(f"save: the state covers {state.pos} tokens, not {len(tokens)}")
        tensors, struct = encode(state, tokens)
        meta = {"version": VERSION, "model": self.model_id, "n": str(len(tokens)),
                "struct": json.dumps(struct), "sha256": _payload_sha(tensors)}
        self.root.mkdir(parents=True, exist_ok=True)
        dest = self.path_for(tokens)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".kvs")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._prune(list(tokens), dest)
        return dest

    def _prune(self, tokens: list[int], keep: Path) -> None:
        for n, path in self._candidates(len(tokens) - 1):
            if path.name == self.path_for(tokens[:n]).name:
                path.unlink(missing_ok=True)
        if self.budget_bytes <= 0:
            return
        files = sorted((p for _, p in self._candidates(1 << 62) if p != keep),
                       key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files) + keep.stat().st_size
        while files and total > self.budget_bytes:
            old = files.pop(0)
            total -= old.stat().st_size
            old.unlink(missing_ok=True)

    def nearest(self, tokens) -> tuple[tuple[int, ...] | None, ModelState | None]:
        """The saved sequence sharing the longest prefix with `tokens` (at least `least`
        tokens), as (its tokens, its state): a resumed conversation whose last reply
        re-tokenizes differently still finds the turns before it (engine.kv.prefix restores the
        state at the last mark before the divergence)."""
        toks, ranked = list(tokens), []
        files = [path for _, path in self._candidates(1 << 62)]
        self._tokens_seen = {p: v for p, v in self._tokens_seen.items() if p in files}
        for path in files:
            saved = self._saved_tokens(path)
            if saved and path.name != self.path_for(saved).name:
                continue  # another model's file (the name hashes model and tokens)
            ranked.append((common_prefix(saved, toks), path, saved))
        for n, path, saved in sorted(ranked, key=lambda r: r[0], reverse=True):
            if n < self.least:
                break
            state = self._read(path, saved)
            if state is not None:
                return tuple(saved), state
        return None, None

    def _saved_tokens(self, path: Path) -> list[int]:
        """A file's token ids, read once per version of the file ([] when unreadable): every
        prompt the memory cache misses asks `nearest`, which looks at every file."""
        try:
            st = path.stat()
        except OSError:
            return []
        key = (st.st_mtime_ns, st.st_size)
        hit = self._tokens_seen.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            with safe_open(str(path), "pt") as f:
                saved = f.get_tensor("tokens").tolist()
        except Exception:  # noqa: BLE001 - damaged: _read warns when it is chosen
            saved = []
        self._tokens_seen[path] = (key, saved)
        return saved

    def load(self, tokens) -> tuple[ModelState | None, int]:
        """The saved state of the longest saved prefix of `tokens`, and its length."""
        toks = list(tokens)
        for n, path in self._candidates(len(toks)):
            if path.name != self.path_for(toks[:n]).name:
                continue
            state = self._read(path, toks[:n])
            if state is not None:
                return state, n
        return None, 0

    def _candidates(self, limit: int) -> list[tuple[int, Path]]:
        found = []
        for p in self.root.glob("*.kvs") if self.root.is_dir() else ():
            head = p.name.split("-", 1)[0]
            if head.isdigit() and 0 < int(head) <= limit:
                found.append((int(head), p))
        return sorted(found, reverse=True)

    def _read(self, path: Path, tokens: list[int]) -> ModelState | None:
        try:
            tensors = load_file(str(path))
            with open(path, "rb") as f:  # safetensors: 8-byte header length, then JSON
                size = int.from_bytes(f.read(8), "little")
                meta = json.loads(f.read(size))["__metadata__"]
            problem = _problem(meta, tensors, self.model_id, tokens)
            if problem is None:
                return _to_devices(decode(tensors, json.loads(meta["struct"])), self.devices)
        except Exception as e:  # noqa: BLE001 - any damage means "do not load"
            problem = f"unreadable ({type(e).__name__}: {e})"
        warnings.warn(f"{path}: KV file ignored: {problem}", KVDiskWarning, stacklevel=3)
        return None


def _to_devices(state: ModelState, devices: list | None) -> ModelState:
    """Each block's state (and its marks') on that block's device."""
    if not devices or all(torch.device(d).type == "cpu" for d in devices):
        return state
    main, mtp = devices[:len(state.layers)], devices[len(state.layers):]
    move = lambda layers, devs: [s.to(d) for s, d in zip(layers, devs, strict=True)]
    marks = {p: Mark(m.pos, tuple(move(m.layers, main)), tuple(move(m.mtp, mtp)))
             for p, m in state.marks.items()}
    return ModelState(move(state.layers, main), move(state.mtp, mtp), marks)


def _problem(meta: dict, tensors: dict, model_id: str, tokens: list[int]) -> str | None:
    if meta.get("version") != VERSION:
        return f"format {meta.get('version')!r}, expected {VERSION!r}"
    if meta.get("model") != model_id:
        return "saved by another model"
    if meta.get("sha256") != _payload_sha(tensors):
        return "checksum mismatch (corrupt)"
    if tensors["tokens"].tolist() != tokens:
        return "saved for other tokens"
    return None
