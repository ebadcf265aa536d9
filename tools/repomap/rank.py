"""Rank definitions by personalized PageRank over the file graph.

Nodes are files; file A links to file B for every name A uses that B defines, weighted like
Aider's map: names in play ×10, long snake/camel names ×10, `_private` ×0.1, names defined in
more than 5 files ×0.1, uses from files in play ×50, and √(number of uses). The random walk
restarts at the files in play (or anywhere, when none are). A definition's score is the rank
that flows into its file along its name.

Shapes: F files, I names; refs are COO triples (file, name, weight), defs (name, file) pairs.
The walk never builds the F×F matrix: rank flows file -> name -> defining files with bincount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tools.repomap.extract import FileTags

DAMPING = 0.85
ITERATIONS = 50
TOLERANCE = 1e-8


@dataclass
class Ranked:
    defs: list[tuple[float, str, str]]  # (score, file, name), best first
    file_rank: dict[str, float]


def _name_weight(name: str, in_play: set[str], n_definers: int) -> float:
    w = 1.0
    if name in in_play:
        w *= 10
    is_snake = "_" in name and any(c.isalpha() for c in name)
    is_camel = any(c.isupper() for c in name) and any(c.islower() for c in name)
    if (is_snake or is_camel) and len(name) >= 8:
        w *= 10
    if name.startswith("_"):
        w *= 0.1
    if n_definers > 5:
        w *= 0.1
    return w


def rank(tags: dict[str, FileTags], focus_files: set[str], focus_names: set[str]) -> Ranked:
    import numpy as np

    files = sorted(tags)
    fidx = {f: i for i, f in enumerate(files)}
    definers: dict[str, list[int]] = {}
    for f in files:
        for name, _, _ in tags[f].defs:
            definers.setdefault(name, []).append(fidx[f])
    names = sorted(n for n in definers)
    nidx = {n: i for i, n in enumerate(names)}
    def_name, def_file = [], []
    for n in names:
        for fi in sorted(set(definers[n])):
            def_name.append(nidx[n])
            def_file.append(fi)
    ndef = np.bincount(np.array(def_name, dtype=np.int64), minlength=len(names))
    ref_file, ref_name, ref_w = _ref_triples(tags, files, nidx, ndef, focus_files, focus_names)
    r = _pagerank(len(files), len(names), ref_file, ref_name, ref_w,
                  np.array(def_name, dtype=np.int64), np.array(def_file, dtype=np.int64),
                  ndef, _personalization(files, focus_files))
    flow = _name_flow(r, ref_file, ref_name, ref_w, ndef, len(files), len(names))
    scored = [(float(flow[n]), files[f], names[n]) for n, f in zip(def_name, def_file,
                                                                     strict=True)]
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    return Ranked(scored, {f: float(r[i]) for i, f in enumerate(files)})


def _ref_triples(tags, files, nidx, ndef, focus_files, focus_names):
    import numpy as np

    rf, rn, rw = [], [], []
    for i, f in enumerate(files):
        boost = 50.0 if f in focus_files else 1.0
        for name, count in tags[f].refs.items():
            n = nidx.get(name)
            if n is not None:
                rf.append(i)
                rn.append(n)
                rw.append(boost * _name_weight(name, focus_names, int(ndef[n]))
                          * math.sqrt(count))
    return (np.array(rf, dtype=np.int64), np.array(rn, dtype=np.int64),
            np.array(rw, dtype=np.float64))


def _personalization(files: list[str], focus_files: set[str]):
    import numpy as np

    p = np.array([1.0 if f in focus_files else 0.0 for f in files])
    if p.sum() == 0:
        p[:] = 1.0
    return p / max(p.sum(), 1.0)


def _out_weight(ref_file, ref_name, ref_w, ndef, n_files):
    import numpy as np

    # every definer of a name gets the same edge weight, so a file's out-weight is
    # sum over its names of weight × number of definers
    return np.bincount(ref_file, weights=ref_w * ndef[ref_name], minlength=n_files)


def _name_flow(r, ref_file, ref_name, ref_w, ndef, n_files, n_names):
    """Rank each name carries to each of its definers: sum over users r[u]·w / out[u]."""
    import numpy as np

    out = _out_weight(ref_file, ref_name, ref_w, ndef, n_files)
    share = np.where(out[ref_file] > 0, r[ref_file] * ref_w / np.maximum(out[ref_file], 1e-300),
                     0.0)
    return np.bincount(ref_name, weights=share, minlength=n_names)


def _pagerank(n_files, n_names, ref_file, ref_name, ref_w, def_name, def_file, ndef, p):
    import numpy as np

    if n_files == 0:
        return np.zeros(0)
    out = _out_weight(ref_file, ref_name, ref_w, ndef, n_files)
    dangling = out == 0
    r = p.copy()
    for _ in range(ITERATIONS):
        flow = _name_flow(r, ref_file, ref_name, ref_w, ndef, n_files, n_names)
        incoming = np.bincount(def_file, weights=flow[def_name], minlength=n_files)
        new = DAMPING * (incoming + r[dangling].sum() * p) + (1 - DAMPING) * p
        if np.abs(new - r).sum() < TOLERANCE:
            return new
        r = new
    return r
