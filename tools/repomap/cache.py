"""Per-file tag cache: path -> (mtime_ns, size, FileTags), pickled under .flashcode/cache.

A warm build stats every file and re-parses only those whose (mtime_ns, size) changed. Cold
builds of many files parse in a process pool.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tools.repomap.extract import FileTags, extract_file

VERSION = 2  # bump when FileTags or the queries change meaning
POOL_THRESHOLD = 200  # below this many files to parse, a process pool costs more than it saves


class TagCache:
    def __init__(self, path: Path | None, workers: int | None = None):
        self.path = path  # None: in memory only
        self.workers = workers  # processes for cold parsing; None: half the CPUs (at most 8)
        self.entries: dict[str, tuple[int, int, FileTags]] = {}
        self.dirty = False
        self.hits = self.parsed = 0
        if path is not None and path.exists():
            try:
                with path.open("rb") as f:
                    version, entries = pickle.load(f)
                if version == VERSION:
                    self.entries = entries
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
                self.entries = {}  # a broken cache is rebuilt, never trusted

    def tags(self, root: Path, rels: Iterable[str]) -> dict[str, FileTags]:
        """Tags of every file in `rels` (repository-relative), parsing what is stale."""
        out, stale = {}, []
        for rel in rels:
            try:
                st = os.stat(root / rel)
            except OSError:
                continue
            hit = self.entries.get(rel)
            if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
                out[rel] = hit[2]
                self.hits += 1
            else:
                stale.append((rel, st.st_mtime_ns, st.st_size))
        for (rel, mtime, size), tags in zip(stale, _parse_all(root, stale, self.workers),
                                            strict=True):
            self.entries[rel] = (mtime, size, tags)
            out[rel] = tags
        self.parsed += len(stale)
        self.dirty = self.dirty or bool(stale)
        return out

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump((VERSION, self.entries), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)
        self.dirty = False


def _parse_all(root: Path, stale: list[tuple[str, int, int]], workers: int | None
               ) -> list[FileTags]:
    paths = [root / rel for rel, _, _ in stale]
    # half the CPUs: on a small shared machine starting workers and shipping tags back costs
    # more than it saves (measured: 2 CPUs, 1,800 files, a pool of 2 was slower than serial)
    workers = workers if workers is not None else min((os.cpu_count() or 1) // 2, 8)
    if workers <= 1 or len(paths) < POOL_THRESHOLD:
        return [extract_file(p) for p in paths]
    # forkserver, not fork: the agent's process has threads (the TUI), and forking those can hang
    ctx = multiprocessing.get_context("forkserver")
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            return list(pool.map(extract_file, paths, chunksize=32))
    except (BrokenProcessPool, OSError):  # e.g. no /dev/shm, or an unimportable __main__
        return [extract_file(p) for p in paths]
