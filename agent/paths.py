"""Where flashcode keeps its files outside a repository, by the XDG base directories:
config (config.toml), data (sessions, proposals, escalation log), cache (saved KV states)."""

from __future__ import annotations

import os
from pathlib import Path

from tools import gitcmd

_XDG = {"config": ("XDG_CONFIG_HOME", ".config"), "data": ("XDG_DATA_HOME", ".local/share"),
        "cache": ("XDG_CACHE_HOME", ".cache")}


def flashcode_dir(kind: str, environ: dict[str, str] | None = None) -> Path:
    """$XDG_<KIND>_HOME/flashcode for kind config, data or cache; the XDG default under HOME
    when the variable is unset or empty."""
    env = os.environ if environ is None else environ
    var, default = _XDG[kind]
    base = env.get(var) or str(Path(env.get("HOME", "~")).expanduser() / default)
    return Path(base) / "flashcode"


def user_config_path(environ: dict[str, str] | None = None) -> Path:
    return flashcode_dir("config", environ) / "config.toml"


def find_project_file(start: Path) -> Path | None:
    """The repository root's `.flashcode.toml` (the root: the nearest folder from `start` up
    holding `.git`; `start` itself outside a repository). A nested one in a subfolder, say a
    vendored library's, does not count."""
    start = start.resolve()
    root = next((d for d in (start, *start.parents) if (d / ".git").exists()), start)
    candidate = root / ".flashcode.toml"
    return candidate if candidate.is_file() else None


def repo_root(cwd: Path) -> Path:
    """The git work tree containing `cwd`, or `cwd` itself outside git."""
    out = gitcmd.run(cwd, "rev-parse", "--show-toplevel", drivers=False)
    return Path(out.stdout.strip()) if out.returncode == 0 else Path(cwd).resolve()
