"""Repo-map benchmark: flashcode's `repomap` against Aider's RepoMap on a copy of this
machine's Python standard library source (about 1,800 files), cold (no cache) and warm (cache
on disk, nothing changed), in the same run. Prints seconds and ratios.

    /work/main/.venv/bin/python bench/repomap.py [--tokens 2048] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.aider_peer import OUT, ensure_aider  # noqa: E402
from tools.base import ToolContext  # noqa: E402
from tools.repomap.cache import TagCache  # noqa: E402
from tools.repomap.extract import language_of  # noqa: E402
from tools.repomap.tool import RepomapArgs, build_map  # noqa: E402
from tools.walk import walk_files  # noqa: E402


def stdlib_copy() -> Path:
    """A copy of the standard library's source, so neither tool writes caches into it."""
    dest = OUT / "stdlib"
    if not dest.exists():
        src = Path(sysconfig.get_paths()["stdlib"])
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(
            "site-packages", "__pycache__", "*.pyc", "*.so", "*.a"))
    return dest


def _clear_caches(root: Path) -> None:
    shutil.rmtree(root / ".flashcode", ignore_errors=True)
    for p in root.glob(".aider.tags.cache.v*"):
        shutil.rmtree(p, ignore_errors=True)


def ours(root: Path, tokens: int, workers: int | None) -> tuple[float, int]:
    ctx = ToolContext(root)
    cache = TagCache(root / ".flashcode" / "cache" / "repomap.pkl", workers=workers)
    t0 = time.perf_counter()
    result = build_map(ctx, RepomapArgs(max_tokens=tokens), cache)
    return time.perf_counter() - t0, len(result.map)


FRESH = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from tools.base import ToolContext
from tools.repomap.tool import RepomapArgs, build_map
build_map(ToolContext(Path(sys.argv[1])), RepomapArgs(max_tokens=int(sys.argv[2])))
print(time.perf_counter() - t0)
"""


def ours_fresh_process(root: Path, tokens: int) -> tuple[float, float]:
    """A warm map in a new interpreter: (seconds including imports, wall seconds of the run)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", FRESH, str(root), str(tokens)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                          text=True, check=True)
    return float(proc.stdout.strip()), time.perf_counter() - t0


def aider(python: Path, root: Path, files: list[str], tokens: int) -> tuple[float, int]:
    helper = Path(__file__).resolve().parent / "aider_repomap_run.py"
    proc = subprocess.run([str(python), str(helper), str(root), str(tokens)],
                          input=json.dumps(files), capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["seconds"], out["chars"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, the best is kept")
    args = ap.parse_args()
    python, root = ensure_aider(), stdlib_copy()
    files = [p.relative_to(root).as_posix() for p in walk_files(root, root)
             if language_of(p) is not None]
    for f in files:  # the page cache is warm for both tools
        (root / f).read_bytes()
    workers = max(1, min((os.cpu_count() or 1) // 2, 8))  # what TagCache uses by default
    print(f"{len(files)} source files in {root} (map budget {args.tokens} tokens, "
          f"{os.cpu_count()} CPUs: ours parses in {workers} process(es))")
    runs = [("aider", lambda: aider(python, root, files, args.tokens)),
            ("ours", lambda: ours(root, args.tokens, None))]
    if workers > 1:
        runs.append(("ours-1proc", lambda: ours(root, args.tokens, 1)))
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in runs:
            _clear_caches(root)
            cold, _ = run()
            warm, chars = run()
            best[f"{name} cold"] = min(best.get(f"{name} cold", 1e9), cold)
            best[f"{name} warm"] = min(best.get(f"{name} warm", 1e9), warm)
            print(f"  {name:<11} cold {cold:7.2f} s   warm {warm:6.2f} s   map {chars} chars",
                  flush=True)
    inside, wall = ours_fresh_process(root, args.tokens)  # the cache is warm from the last run
    print(f"  ours warm in a fresh process: {inside:.2f} s including imports "
          f"({wall:.2f} s with interpreter start)")
    print("\nbest of runs:")
    for key, secs in best.items():
        print(f"  {key:<17} {secs:7.2f} s")
    for mode in ("cold", "warm"):
        print(f"{mode}: aider / ours = {best[f'aider {mode}'] / best[f'ours {mode}']:.1f}x")
    (OUT / "repomap.json").write_text(json.dumps(best, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
