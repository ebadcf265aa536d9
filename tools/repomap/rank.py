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


def _def_pairs(tags: dict[str, FileTags], files: list[str]):
    """Name ids and unique (name, file) definition pairs, sorted by name id then file."""
    import numpy as np

    nidx: dict[str, int] = {}
    dn, df = [], []
    for i, f in enumerate(files):
        for name, *_ in tags[f].defs:
            dn.append(nidx.setdefault(name, len(nidx)))
            df.append(i)
    width = max(len(files), 1)
    pairs = np.unique(np.array(dn, dtype=np.int64) * width + np.array(df, dtype=np.int64))
    return nidx, pairs // width, pairs % width


def rank(tags: dict[str, FileTags], focus_files: set[str], focus_names: set[str],
         limit: int | None = None) -> Ranked:
    """Definitions by score, best first; only the best `limit` when given (the map can show
    no more definitions than its token budget, so callers pass about that)."""
    import numpy as np

    files = sorted(tags)
    nidx, dn, df = _def_pairs(tags, files)
    names = list(nidx)
    ndef = np.bincount(dn, minlength=len(names))
    ref_file, ref_name, ref_w = _ref_triples(tags, files, nidx, ndef, focus_files, focus_names)
    r = _pagerank(len(files), len(names), ref_file, ref_name, ref_w, dn, df, ndef,
                  _personalization(files, focus_files))
    flow = _name_flow(r, ref_file, ref_name, ref_w, ndef, len(files), len(names))
    score = flow[dn]
    order = np.lexsort((dn, df, -score)) if len(dn) else dn  # ties: by file, then name
    top = order[:limit].tolist() if limit is not None else order.tolist()
    scored = [(float(score[k]), files[df[k]], names[dn[k]]) for k in top]
    return Ranked(scored, {f: float(r[i]) for i, f in enumerate(files)})


def _ref_triples(tags, files, nidx, ndef, focus_files, focus_names):
    import numpy as np

    rf, rn, rw = [], [], []
    weight: dict[int, float] = {}  # per name: it does not depend on the file using it
    for i, f in enumerate(files):
        boost = 50.0 if f in focus_files else 1.0
        for name, count in tags[f].refs.items():
            n = nidx.get(name)
            if n is not None:
                w = weight.get(n)
                if w is None:
                    w = weight[n] = _name_weight(name, focus_names, int(ndef[n]))
                rf.append(i)
                rn.append(n)
                rw.append(boost * w * math.sqrt(count))
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
