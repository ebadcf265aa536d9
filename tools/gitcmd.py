"""Every git command flashcode runs itself goes through here, with the programs a repository's
own configuration could make git run switched off.

A repository is input from a stranger, and so is its `.git/config` (a repository handed over as
a directory or an archive keeps it; a model with a write under `.git/` could set it). Git runs
programs named there from flashcode's own commands: `git add -A` runs `core.fsmonitor` and the
`clean` filters, checkout runs `smudge` filters, commit runs hooks and `gpg.program`, diff runs
external diff drivers and textconv. So each command gets, on its command line (which beats
every config file):

    core.fsmonitor=false, core.hooksPath=/dev/null (no hooks), core.pager=cat,
    core.editor=true, commit.gpgSign=false, tag.gpgSign=false, protocol.ext.allow=never,
    core.sshCommand=false, an empty value for every filter.*.clean/smudge/process,
    diff.*.command/textconv and merge.*.driver the repository configures,

and the environment has GIT_TERMINAL_PROMPT=0, GIT_OPTIONAL_LOCKS=0 (a status never writes the
index) and no GIT_EXTERNAL_DIFF. Diff-producing commands also get --no-ext-diff --no-textconv
from their callers. Commands the model runs in `shell` are not git commands of flashcode's: the
sandbox keeps `.git` read-only for them instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SAFE_CONFIG = ("core.fsmonitor=false", "core.hooksPath=/dev/null", "core.pager=cat",
               "core.editor=true", "commit.gpgSign=false", "tag.gpgSign=false",
               "protocol.ext.allow=never", "core.sshCommand=false")
# configured programs keyed by driver name: found per repository and blanked
_DRIVERS = r"^(filter\..*\.(clean|smudge|process)|diff\..*\.(command|textconv)|merge\..*\.driver)$"


def safe_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_EXTERNAL_DIFF", "GIT_PAGER")}
    return {**env, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", **(extra or {})}


def configured_drivers(cwd: Path) -> list[str]:
    """The `filter.X.clean`-style keys the repository's config sets (read, never run)."""
    proc = subprocess.run(["git", "-c", "core.fsmonitor=false", "config", "-z", "--get-regexp",
                           _DRIVERS], cwd=cwd, capture_output=True, text=True, env=safe_env())
    keys = (entry.split("\n", 1)[0] for entry in proc.stdout.split("\0") if entry)
    return sorted(set(keys))


def argv(cwd: Path, *args: str, drivers: bool = True) -> list[str]:
    """`git <args>` with every configured program switched off (`drivers=False`: for a
    command that reads no file content, like rev-parse, skip looking the drivers up)."""
    found = configured_drivers(cwd) if drivers else []
    options = [x for kv in (*SAFE_CONFIG, *(f"{k}=" for k in found)) for x in ("-c", kv)]
    return ["git", *options, *args]


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
        check: bool = False, drivers: bool = True) -> subprocess.CompletedProcess:
    """Run one git command of flashcode's own in `cwd` (text in and out, output captured)."""
    return subprocess.run(argv(Path(cwd), *args, drivers=drivers), cwd=cwd,
                          capture_output=True, text=True, input=input, env=safe_env(env),
                          check=check)
