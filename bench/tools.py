"""The everyday tools' speed against the best peer, measured in the same run.

    python bench/tools.py [--repeats 5] [--tree DIR] [--skip-tui]

  - search: `flashcode tool search` (a regex over a large tree: the Python standard library with
    its site-packages, by default) against ripgrep itself (`rg -n --hidden --no-ignore`, output
    discarded), by CPU time of the whole process (user + system, from getrusage of children);
  - first screen: process start → the app's input drawn on a terminal (tmux): `flashcode
    --model replay:FILE` as a user starts it, against a bare Textual app (one TextArea, one
    Static: bench/tui.py's peer).

Runs are interleaved A/B, `--repeats` of each; each line gives the median, the spread (min–max)
and the ratio of the medians (flashcode / peer; 1.0 = as fast as the peer). Targets (issue 20):
search ≤ 2×, first screen ≤ 1.3×.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATTERN = r"def \w+_cache\("


def child_cpu(argv: list[str], cwd: Path, env: dict) -> float:
    """CPU seconds (user + system) that running `argv` to completion took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_search(tree: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours = [sys.executable, "-m", "agent.cli", "tool", "search", "-C", str(tree), "--args",
            json.dumps({"pattern": PATTERN, "max_results": 200})]
    peer = ["rg", "-n", "--hidden", "--no-ignore", "-e", PATTERN, "."]
    a, b = [], []
    for _ in range(repeats):  # interleaved: a busy moment hits both
        a.append(child_cpu(ours, tree, env))
        b.append(child_cpu(peer, tree, env))
    return _compare("tool search (CPU s)", a, b)


def bench_first_screen(repeats: int) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    import tui  # bench/tui.py: the tmux terminal and the bare Textual peer

    a, b = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            a.append(_flashcode_tti(tui, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            term = tui.Terminal([sys.executable, "-c", tui.PEER], tui._env(Path(tmp)), Path(tmp))
            try:
                b.append(term.wait_for("or /help"))
            finally:
                term.close()
    return _compare("first screen (wall s)", a, b)


def _flashcode_tti(tui, tmp: Path) -> float:
    """The real entry point, as a user starts it; the model is a recorded session (replay:),
    so nothing but flashcode itself is timed."""
    recording = tmp / "recording.jsonl"
    recording.write_text(json.dumps({"type": "message", "message": {
        "role": "assistant", "content": "hello"}}) + "\n")
    argv = [sys.executable, "-m", "agent.cli", "--model", f"replay:{recording}",
            "--no-rewrite", "-C", str(tui._repo(tmp))]
    term = tui.Terminal(argv, tui._env(tmp), ROOT)
    try:
        return term.wait_for("or /help")
    finally:
        term.close()


def _compare(what: str, ours: list[float], peer: list[float]) -> dict:
    ma, mb = statistics.median(ours), statistics.median(peer)
    print(f"{what:<24} flashcode {ma:7.3f} ({min(ours):.3f}–{max(ours):.3f})   "
          f"peer {mb:7.3f} ({min(peer):.3f}–{max(peer):.3f})   ratio {ma / mb:5.2f}x", flush=True)
    return {"what": what, "flashcode": ours, "peer": peer, "ratio": ma / mb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tree", type=Path, default=Path(sysconfig.get_paths()["stdlib"]),
                    help="the tree to search (default: this Python's standard library)")
    ap.add_argument("--skip-tui", action="store_true", help="only the search")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if shutil.which("rg") is None:
        print("bench/tools.py needs ripgrep as the peer (apt-get install ripgrep)", file=sys.stderr)
        return 2
    files = sum(1 for _ in args.tree.rglob("*.py"))
    print(f"tree {args.tree} ({files} .py files), {args.repeats} interleaved repeats, "
          f"at {time.strftime('%Y-%m-%d %H:%M')}")
    out = [bench_search(args.tree, args.repeats)]
    if not args.skip_tui and shutil.which("tmux"):
        out.append(bench_first_screen(args.repeats))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
