"""What several commands share on the command line: the model and agent flag groups, the
settings and directory an invocation means, and loading the model with a message when it cannot
be loaded. Standard library only until settings load."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from agent import exitcodes

DEVICE_MAP_HELP = ("where the local engine puts the model: cpu (default), cuda:0, cuda:0,cuda:1 "
                   "(blocks split by size), auto (the plan `flashcode doctor` shows), or units: "
                   "layers.0-20=cuda:0,layers.21-42=cuda:1,mtp.0=cuda:1,experts=cpu (routed "
                   "experts in host memory)")

# the flags that become settings (agent.config's last layer), by their attribute names
SETTING_FLAGS = ("model", "endpoint", "model_name", "approval", "max_steps", "rewrite",
                 "thinking", "device_map", "kernels", "decode")


def subparser(sub, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=description,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=exitcodes.epilog())


def add_model_flags(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the subcommand must not be reset by the subcommand's default.
    g = p.add_argument_group("model")
    add = lambda *a, **k: g.add_argument(*a, default=argparse.SUPPRESS, **k)
    add("--model", metavar="DIR|replay:PATH",
        help="local DeepSeek-V4 checkpoint directory, or replay:SESSION.jsonl")
    add("--endpoint", metavar="URL",
        help="OpenAI-compatible base URL (vLLM, SGLang, DeepSeek API, flashcode serve)")
    add("--model-name", metavar="NAME", help="model name to request from --endpoint")
    add("--device-map", metavar="SPEC", help=DEVICE_MAP_HELP)
    add("--kernels", choices=["auto", "triton", "ref"],
        help="engine kernels: auto (Triton on CUDA, PyTorch on CPU), triton, ref")
    add("--eager", dest="decode", action="store_const", const="eager",
        help="engine decode steps without torch.compile or CUDA graphs (default: compiled "
        "and graph-captured on a GPU, eager on the CPU; see the `decode` setting)")
    add("--config", metavar="FILE",
        help="use this TOML file as the project config instead of .flashcode.toml")
    add("-C", "--cwd", metavar="DIR", help="work in DIR instead of the current directory")


def add_agent_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("agent")
    add = lambda *a, **k: g.add_argument(*a, default=argparse.SUPPRESS, **k)
    add("--approval", choices=["read-only", "ask", "auto-edit", "full-auto"],
        help="what the agent may do without asking (default: ask)")
    add("--max-steps", type=int, metavar="N", help="most model turns (default: 100)")
    add("--no-rewrite", dest="rewrite", action="store_false",
        help="skip rewriting the request into a task spec")
    add("--no-thinking", dest="thinking", action="store_false",
        help="ask the model to answer without reasoning first")


def load_model(settings, command: str, err: TextIO):
    """The configured model, or None after saying on `err` why there is none (the command
    then exits 4, BACKEND_UNAVAILABLE)."""
    from agent import wiring
    from agent.model import BackendError

    try:
        return wiring.model_loader(settings)(lambda fraction, what: None)
    except BackendError as exc:
        print(f"flashcode {command}: {exc}", file=err)
        return None


def cwd_of(args: argparse.Namespace) -> Path:
    """The directory this invocation works in (-C DIR, else the current one)."""
    return Path(getattr(args, "cwd", None) or ".")


def settings_for(args: argparse.Namespace, warn: TextIO | None = sys.stderr):
    """Settings for this invocation (the layers of agent.config, plus these flags). The keys
    an untrusted repository's .flashcode.toml set and were ignored are named on `warn`."""
    settings, project_file, ignored = load(args)
    if ignored and warn is not None:
        print(untrusted_warning(project_file, ignored), file=warn)
    return settings


def load(args: argparse.Namespace):
    """(settings, the project file, the keys of it ignored because the repository is not
    trusted)."""
    from agent.config import ConfigError, default_sources, load_settings

    sources = default_sources(Path(args.cwd) if getattr(args, "cwd", None) else None)
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file.")
        sources = replace(sources, project_file=path, project_trusted=True)  # named by the user
    ignored: list[str] = []
    settings = load_settings(sources, {n: getattr(args, n, None) for n in SETTING_FLAGS},
                             ignored)
    return settings, sources.project_file, ignored


def untrusted_warning(project_file: Path, ignored: list[str]) -> str:
    return (f"flashcode: {project_file} sets {', '.join(ignored)}; ignored because this "
            "repository is not trusted. If you trust it: flashcode trust "
            f"{project_file.parent}")


def ask_trust(project_file: Path, ignored: list[str], read=input) -> bool:
    """Ask on the terminal whether to trust the repository of `project_file`; record a yes."""
    print(f"{project_file} sets {', '.join(ignored)}, which flashcode ignores until you trust "
          "this repository. Only trust a repository whose files you know.")
    try:
        answer = read("Trust it? [y/N] ").strip().lower()
    except EOFError:
        return False
    if answer not in ("y", "yes"):
        return False
    from agent import trust

    trust.trust(project_file.parent)
    return True
