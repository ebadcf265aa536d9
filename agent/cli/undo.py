"""`flashcode undo`: list checkpoints, or restore the working tree to one of them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent import checkpoints, exitcodes
from agent.checkpoints import CheckpointError
from agent.cli.args import cwd_of

SAFETY_PREFIX = "before restoring"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def run(args) -> int:
    return run_undo(cwd_of(args), args.checkpoint, args.list)


def run_undo(repo: Path, target: str | None, list_only: bool) -> int:
    try:
        items = checkpoints.history(repo, limit=1000)
        if list_only:
            if not items:
                print("No checkpoints yet: flashcode takes one before each write by the agent.")
            now = time.time()
            for i, cp in enumerate(items):
                print(f"{i:>3}  {cp.commit[:10]}  {_age(now - cp.created):>8}  {cp.label}")
            return exitcodes.OK
        if target is None:
            chosen = next((c for c in items if not c.label.startswith(SAFETY_PREFIX)), None)
            if chosen is None:
                raise CheckpointError("There are no checkpoints in this repository yet.")
        else:
            chosen = checkpoints.find(repo, target)
        print(checkpoints.restore(repo, chosen).summary())
        return exitcodes.OK
    except CheckpointError as exc:
        print(f"flashcode undo: {exc}", file=sys.stderr)
        return exitcodes.NOT_FIXED
