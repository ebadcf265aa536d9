"""Is the configured model usable? One `Check` for `flashcode doctor`, and the message the
interactive command prints before it starts without one.

Every check returns a `Check` (status ok / warn / missing, a detail line, a fix line).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agent.config import Settings

FLASH_WEIGHTS_GIB = 149  # the official FP8/FP4 checkpoint, all shards (spec §8b)
NO_MODEL = "no checkpoint directory or endpoint configured"
HOW_TO_GET_A_MODEL = (
    "either point flashcode at an OpenAI-compatible server: --endpoint URL --model-name NAME "
    "(e.g. --endpoint https://api.deepseek.com/v1 --model-name deepseek-v4-flash with "
    "OPENAI_API_KEY set, or a vLLM/SGLang server), or at local weights: --model DIR with the "
    f"DeepSeek-V4-Flash checkpoint (about {FLASH_WEIGHTS_GIB} GiB; needs GPUs with more memory "
    "than that, e.g. 2x H200). Put either in ~/.config/flashcode/config.toml to make it stick."
)


@dataclass
class Check:
    name: str
    status: str  # "ok" | "warn" | "missing"
    detail: str
    fix: str = ""


def check_backend(settings: Settings, probe: bool = True) -> Check:
    """Is there a model to talk to? Probes an endpoint's /models when `probe` is set."""
    if settings.endpoint:
        return _check_endpoint(settings, probe)
    if settings.model:
        return _check_model_path(settings.model)
    return Check("model", "missing", NO_MODEL, HOW_TO_GET_A_MODEL)


def _check_endpoint(settings: Settings, probe: bool) -> Check:
    import os

    url = settings.endpoint.rstrip("/")
    name = settings.model_name or "(no --model-name set)"
    if not probe:
        return Check("model", "ok", f"endpoint {url}, model {name}")
    key = os.environ.get(settings.api_key_env, "")
    try:
        req = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            listing = json.load(resp)
        models = listing.get("data") if isinstance(listing, dict) else None
        ids = [m.get("id") for m in models if isinstance(m, dict)] \
            if isinstance(models, list) else []
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Check("model", "missing",
                         f"endpoint {url} refused the API key (HTTP {exc.code})",
                         f"export {settings.api_key_env}=<your key>")
        return Check("model", "warn", f"endpoint {url} answered HTTP {exc.code} on /models",
                     "check the URL: it should end in /v1 for most servers")
    except (OSError, ValueError) as exc:
        return Check("model", "missing", f"endpoint {url} is unreachable ({exc})",
                     "start the server, or fix --endpoint / `endpoint` in your config")
    if settings.model_name and ids and settings.model_name not in ids:
        return Check("model", "warn", f"endpoint {url} does not list {settings.model_name}; "
                     f"it serves: {', '.join(map(str, ids))}", "set --model-name to one of those")
    return Check("model", "ok", f"endpoint {url} serves {', '.join(map(str, ids)) or 'models'}")


def _check_model_path(model: str) -> Check:
    if model.startswith("replay:"):
        path = Path(model[len("replay:"):]).expanduser()
        if path.is_file():
            return Check("model", "ok", f"replaying the session recorded in {path}")
        return Check("model", "missing", f"replay file {path} does not exist",
                     "give the path of a session .jsonl file")
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        return Check("model", "missing", f"{path} is not a checkpoint directory (no config.json)",
                     HOW_TO_GET_A_MODEL)
    shards = list(path.glob("*.safetensors"))
    if not shards:
        return Check("model", "missing", f"{path} has config.json but no *.safetensors shards",
                     "finish the download, or point --model at the right directory")
    gib = sum(f.stat().st_size for f in shards) / 2**30
    return Check("model", "ok", f"{path}: {len(shards)} shards, {gib:.2f} GiB of weights")


def backend_problem(settings: Settings) -> str | None:
    """A message saying what the agent needs, or None when a backend is configured."""
    found = check_backend(settings, probe=False)
    if found.status == "ok":
        return None
    return f"flashcode needs a model: {found.detail}.\nHow to fix: {found.fix}"
