"""`flashcode doctor`: what this machine offers flashcode, and the fix for each gap.

Every check returns a `Check` (status ok / warn / missing, a detail line, a fix line); the
report prints them in order. Nothing here raises for a missing package: that is a finding.
torch is imported only inside the torch check.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from agent import exitcodes
from agent.backends.check import Check, check_backend
from agent.config import Settings


def check_python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if v < (3, 11):
        return Check("python", "missing", text, "install Python 3.11 or newer")
    return Check("python", "ok", text)


def check_package(module: str, dist: str, why: str, required: bool = True) -> Check:
    if importlib.util.find_spec(module) is None:
        return Check(dist, "missing" if required else "warn", f"not installed ({why})",
                     f"pip install '{dist}'  (or rerun scripts/setup)")
    try:
        return Check(dist, "ok", version(dist))
    except PackageNotFoundError:
        return Check(dist, "ok", "installed")


def check_torch() -> list[Check]:
    if importlib.util.find_spec("torch") is None:
        return [Check("torch", "missing", "not installed (needed by the in-process engine)",
                      "pip install torch==2.13.0  (CPU) or a CUDA build from pytorch.org")]
    import torch

    checks = [Check("torch", "ok", torch.__version__)]
    if not torch.cuda.is_available():
        checks.append(Check("cuda", "warn", "no CUDA device: the engine runs on the CPU, "
                            "practical only for tiny test checkpoints",
                            "use a GPU machine, or an endpoint (--endpoint URL)"))
        return checks
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        checks.append(Check(f"cuda:{i}", "ok", f"{torch.cuda.get_device_name(i)}, "
                            f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"))
    return checks


def check_triton() -> Check:
    if sys.platform != "linux":
        return Check("triton", "warn", "not available on this platform; plain PyTorch kernels")
    found = check_package("triton", "triton", "GPU kernels", required=False)
    if found.status == "ok":
        found.detail += " (kernels run on CUDA; on CPU only under TRITON_INTERPRET=1, for tests)"
    return found


def check_memory_plan(settings: Settings, gpus: list[int] | None = None) -> Check:
    """Which placement of the weights (the configured checkpoint, else Flash) fits here."""
    from engine.weights import memplan  # torch-free arithmetic on safetensors headers

    path = Path(settings.model).expanduser() if settings.model else None
    if path is not None and (path / "config.json").is_file():
        weights, what = memplan.read_weights(path), str(path)
    else:
        weights, what = memplan.flash_estimate(), "DeepSeek-V4-Flash (estimate)"
    gpus = _gpu_bytes() if gpus is None else gpus
    p = memplan.plan(weights, gpus, _host_bytes())
    status = "ok" if p.name in ("single-gpu", "multi-gpu") else "warn"
    fix = "" if p.fits else "use an endpoint (--endpoint URL), or GPUs with more memory"
    detail = f"{what}: {p.name}: {p.detail}"
    if p.fits:  # what `--device-map auto` will choose, spelled out for a config file
        detail += f"; --device-map auto places it as {memplan.to_spec(p.device_map)}"
    return Check("memory plan", status, detail, fix)


def _gpu_bytes() -> list[int]:
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_properties(i).total_memory
            for i in range(torch.cuda.device_count())]


def _host_bytes() -> int:
    import os

    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_tool(cmd: str, why: str, fix: str, required: bool = False) -> Check:
    path = shutil.which(cmd)
    if path:
        return Check(cmd, "ok", path)
    return Check(cmd, "missing" if required else "warn", f"not found ({why})", fix)


def check_trust(cwd: Path) -> Check:
    """Whether the repository's .flashcode.toml is applied whole (agent.trust)."""
    from agent import trust
    from agent.config import find_project_file

    project = find_project_file(cwd)
    if project is None:
        return Check("trust", "ok", "no .flashcode.toml in this repository")
    if trust.is_trusted(project.parent):
        return Check("trust", "ok", f"{project.parent} is trusted: {project} applies whole")
    return Check("trust", "warn", f"{project.parent} is not trusted: {project} may set only "
                 "harmless keys and limits that tighten",
                 f"flashcode trust {project.parent}  (if you know its files)")


def check_mcp(settings: Settings, cwd: Path) -> list[Check]:
    """Each configured MCP server started (as the agent would), its tools listed, stopped."""
    if not settings.mcp_servers:
        return []
    from agent.mcp import McpTools
    from agent.wiring import repo_root

    servers = McpTools(settings.mcp_servers, repo_root(cwd))
    try:
        servers.start()
        statuses = servers.status()
    finally:
        servers.close()
    return [_mcp_check(s) for s in statuses]


def _mcp_check(s) -> Check:
    name = f"mcp {s.name}"
    if s.state == "ready":
        shown = ", ".join(s.tools[:6]) + (", ..." if len(s.tools) > 6 else "")
        return Check(name, "ok", f"{s.transport} {s.where}: {len(s.tools)} tools ({shown})")
    if s.state == "disabled":
        return Check(name, "ok", f"{s.transport} {s.where}: disabled (enabled = false)")
    return Check(name, "missing", f"{s.transport} {s.where}: {s.error or s.state}",
                 f"check [mcp_servers.{s.name}] in your config (command, args, env or url); "
                 "run its command by hand to see why it stops")


def collect(settings: Settings, cwd: Path | None = None) -> list[Check]:
    pkgs = [("textual", "textual", "the app"), ("prompt_toolkit", "prompt_toolkit", "--plain"),
            ("pydantic", "pydantic", "settings"), ("git", "gitpython", "git tools"),
            ("tree_sitter_language_pack", "tree-sitter-language-pack", "repo map"),
            ("jinja2", "jinja2", "prompts"), ("pathspec", "pathspec", ".gitignore rules"),
            ("safetensors", "safetensors", "weights"), ("tokenizers", "tokenizers", "tokenizer"),
            ("openai", "openai", "endpoint backend"), ("mcp", "mcp", "MCP servers' tools")]
    return [
        check_python(), *check_torch(), check_triton(),
        *(check_package(m, d, why) for m, d, why in pkgs),
        check_tool("git", "repository tools", "apt-get install git", required=True),
        check_tool("rg", "fast search; a Python fallback is used", "apt-get install ripgrep"),
        check_tool("bwrap", "shell sandbox", "apt-get install bubblewrap"),
        check_memory_plan(settings),
        check_trust(cwd or Path.cwd()),
        *check_mcp(settings, cwd or Path.cwd()),
        check_backend(settings),  # last: run_doctor's exit code reads it
    ]


def run(args) -> int:
    from agent.cli.args import cwd_of, settings_for

    return run_doctor(settings_for(args), as_json=args.json, cwd=cwd_of(args))


def run_doctor(settings: Settings, as_json: bool = False, cwd: Path | None = None) -> int:
    checks = collect(settings, cwd)
    if as_json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for c in checks:
            print(f"{c.status:<8}{c.name:<28}{c.detail}")
            if c.fix and c.status != "ok":
                print(f"{'':<8}{'':<28}fix: {c.fix}")
        missing = [c.name for c in checks if c.status == "missing"]
        print(f"\n{len(checks) - len(missing)} of {len(checks)} checks pass"
              + (f"; missing: {', '.join(missing)}" if missing else ""))
    backend = checks[-1]
    return exitcodes.OK if backend.status != "missing" else exitcodes.BACKEND_UNAVAILABLE
