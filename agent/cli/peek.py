"""What the app's first screen needs from the settings, read without validating them.

Validating settings loads pydantic, and the first screen should not wait for it: the app
starts drawn, and the settings and the model load behind a progress bar. Read here with the
standard library only: the theme, whether any model is configured at all, and whether the
repository's own config sets a key an untrusted repository may not set. When any of these is
unsure (a file that does not parse, no model anywhere, a question to ask about trust), `peek`
answers None and the command takes the slow path, which says exactly what is wrong.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from agent import trust
from agent.paths import find_project_file, user_config_path


@dataclass(frozen=True)
class Peeked:
    theme: str  # "dark" | "light"


def peek(args: argparse.Namespace) -> Peeked | None:
    """The first screen's settings, or None when the full, validating load must come first."""
    if getattr(args, "config", None):
        return None
    cwd = Path(getattr(args, "cwd", None) or ".")
    project = find_project_file(cwd)
    try:
        user = _toml(user_config_path())
        mine = _toml(project) if project is not None else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if project is not None and not trust.is_trusted(project.parent):
        if set(mine) - trust.HARMLESS:  # maybe ignored: the slow path names them, asks
            return None
        mine = {}  # nothing in it decides the model
    env = {k[len("FLASHCODE_"):].lower(): v for k, v in os.environ.items()
           if k.startswith("FLASHCODE_")}
    layers = [user, mine, env, {k: getattr(args, k, None) for k in ("model", "endpoint")}]
    if not any(layer.get("model") or layer.get("endpoint") for layer in layers):
        return None  # no model: the slow path says what is needed and exits 4
    themes = [layer["theme"] for layer in layers[:3] if isinstance(layer.get("theme"), str)]
    return Peeked(themes[-1] if themes and themes[-1] in ("dark", "light") else "dark")


def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
