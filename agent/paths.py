"""Where flashcode keeps its files outside a repository, by the XDG base directories:
config (config.toml), data (sessions, proposals, escalation log), cache (saved KV states)."""

from __future__ import annotations

import os
from pathlib import Path

_XDG = {"config": ("XDG_CONFIG_HOME", ".config"), "data": ("XDG_DATA_HOME", ".local/share"),
        "cache": ("XDG_CACHE_HOME", ".cache")}


def flashcode_dir(kind: str, environ: dict[str, str] | None = None) -> Path:
    """$XDG_<KIND>_HOME/flashcode for kind config, data or cache; the XDG default under HOME
    when the variable is unset or empty."""
    env = os.environ if environ is None else environ
    var, default = _XDG[kind]
    base = env.get(var) or str(Path(env.get("HOME", "~")).expanduser() / default)
    return Path(base) / "flashcode"
