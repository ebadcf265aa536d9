"""Which repositories the user trusts, and what an untrusted repository's config may set.

A repository is a stranger's until its user says otherwise: `flashcode trust [PATH]`, or a yes
when an interactive session asks. Until then its `.flashcode.toml` may set only keys that change
how the agent works, not whom it talks to or what it may touch (HARMLESS), and limits that only
tighten (TIGHTEN: fewer steps, a stricter approval mode, the sandbox on, more deny rules). Every
other key it sets (endpoint, model, api_key_env, approval that loosens, allow, sandbox off, the
engine's paths, ...) is ignored, and the commands say which, once.

Trusted repositories are listed by resolved path in `$XDG_CONFIG_HOME/flashcode/trusted.toml`,
which only flashcode writes.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from agent.paths import flashcode_dir

HARMLESS = frozenset({"rewrite", "thinking", "theme", "context_window", "escalate_after",
                      "test_command", "output_cap_mib"})
TIGHTEN = frozenset({"max_steps", "max_tokens", "max_seconds", "max_cost", "approval",
                     "sandbox", "deny"})
APPROVAL_ORDER = ("read-only", "ask", "auto-edit", "full-auto")  # strictest first


def store_path(environ: dict[str, str] | None = None) -> Path:
    return flashcode_dir("config", environ) / "trusted.toml"


def trusted_paths(environ: dict[str, str] | None = None) -> list[str]:
    """The trusted repositories' paths (a damaged store trusts nothing)."""
    try:
        data = tomllib.loads(store_path(environ).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    entries = data.get("repository", [])
    return [e["path"] for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]


def _key(root: Path) -> str:
    return str(Path(root).resolve())


def is_trusted(root: Path, environ: dict[str, str] | None = None) -> bool:
    return _key(root) in trusted_paths(environ)


def trust(root: Path, environ: dict[str, str] | None = None) -> bool:
    """Record `root` as trusted; False when it already was."""
    paths = trusted_paths(environ)
    if _key(root) in paths:
        return False
    _write([*paths, _key(root)], environ)
    return True


def revoke(root: Path, environ: dict[str, str] | None = None) -> bool:
    """Forget `root`; False when it was not trusted."""
    paths = trusted_paths(environ)
    if _key(root) not in paths:
        return False
    _write([p for p in paths if p != _key(root)], environ)
    return True


def _write(paths: list[str], environ: dict[str, str] | None) -> None:
    import json
    import tempfile
    import time

    path = store_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    body = "".join(f"\n[[repository]]\npath = {json.dumps(p)}\nrecorded = \"{stamp}\"\n"
                   for p in paths)
    text = ("# Repositories whose .flashcode.toml may set every key. Written by flashcode "
            "(flashcode trust PATH, flashcode trust --revoke PATH).\n" + body)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trusted.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def untrusted_layer(layer: dict[str, Any], current: dict[str, Any]) -> tuple[dict, list[str]]:
    """What an untrusted project file may apply, given the effective settings below it
    (`current`, every key); and the keys it set that are ignored, sorted."""
    kept: dict[str, Any] = {}
    for key, value in layer.items():
        if key in HARMLESS:
            kept[key] = value
        elif key in TIGHTEN and (tighter := _tighter(key, value, current.get(key))) is not None:
            kept[key] = tighter
    return kept, sorted(set(layer) - set(kept))


def _tighter(key: str, value: Any, now: Any) -> Any:
    """The value to apply when `value` is at least as strict as `now`, else None."""
    if key == "deny":
        return [*(now or []), *value] if isinstance(value, list) else None
    if key == "approval":
        strict = value in APPROVAL_ORDER and now in APPROVAL_ORDER and \
            APPROVAL_ORDER.index(value) <= APPROVAL_ORDER.index(now)
        return value if strict else None
    if key == "sandbox":
        return value if value == "on" or value == now else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None  # a bad value: ignored rather than applied unchecked
    return value if now is None else min(value, now)
