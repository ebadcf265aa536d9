"""`flashcode trust [PATH]`: let a repository's .flashcode.toml set every key.

Until then an untrusted repository's file may set only harmless keys and limits that tighten
(agent.trust); the commands name the keys they ignored. `--list` shows the trusted
repositories, `--revoke PATH` forgets one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent import exitcodes, trust, wiring


def run(args: argparse.Namespace) -> int:
    if args.list:
        paths = trust.trusted_paths()
        print("\n".join(paths) if paths else "No repository is trusted yet.")
        return exitcodes.OK
    start = Path(args.path or ".")
    if not start.is_dir():
        print(f"flashcode trust: {start} is not a directory.")
        return exitcodes.USAGE
    root = wiring.repo_root(start)
    if args.revoke:
        done = trust.revoke(root)
        print(f"{root} is no longer trusted." if done else f"{root} was not trusted.")
        return exitcodes.OK
    done = trust.trust(root)
    print(f"Trusted {root}: its .flashcode.toml may now set every key (endpoint, model, "
          f"approval, allow, sandbox, ...). To undo: flashcode trust --revoke {root}"
          if done else f"{root} is already trusted.")
    return exitcodes.OK

