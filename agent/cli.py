"""`flashcode`: the command line. The one place that wires the engine in, always lazily.

Importing this module imports only the standard library, so `flashcode --help` starts fast;
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import cli_repo, exitcodes

DESCRIPTION = """\
flashcode: a terminal coding agent that runs DeepSeek-V4-Flash in its own process.

Run `flashcode` in a repository to open the interactive app. The model comes from a local
checkpoint (--model DIR) or any OpenAI-compatible endpoint (--endpoint URL --model-name NAME:
vLLM, SGLang, the DeepSeek API, or `flashcode serve` on another machine).
Settings are layered: defaults, ~/.config/flashcode/config.toml, the project's .flashcode.toml,
FLASHCODE_* environment variables, then these flags. `flashcode doctor` checks your setup.
"""

EXAMPLES = """\
examples:
  flashcode --endpoint https://api.deepseek.com/v1 --model-name deepseek-v4-flash
  flashcode --model ~/models/DeepSeek-V4-Flash
  flashcode fix "the date parser fails on leap years" --test "pytest tests/test_dates.py"
  flashcode propose "add a --json flag to the export command"
  flashcode exec "explain what src/cache.py does" --json
  flashcode engine make-tiny /tmp/tiny && flashcode --model /tmp/tiny
  flashcode doctor
"""


DEVICE_MAP_HELP = ("where the local engine puts the model: cpu (default), cuda:0, cuda:0,cuda:1 "
                   "(blocks split by size), auto (the plan `flashcode doctor` shows), or units: "
                   "layers.0-20=cuda:0,layers.21-42=cuda:1,mtp.0=cuda:1,experts=cpu (routed "
                   "experts in host memory)")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
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
    add("--config", metavar="FILE",
        help="use this TOML file as the project config instead of .flashcode.toml")
    add("-C", "--cwd", metavar="DIR", help="work in DIR instead of the current directory")


def _add_agent_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("agent")
    add = lambda *a, **k: g.add_argument(*a, default=argparse.SUPPRESS, **k)
    add("--approval", choices=["read-only", "ask", "auto-edit", "full-auto"],
        help="what the agent may do without asking (default: ask)")
    add("--max-steps", type=int, metavar="N", help="most model turns (default: 100)")
    add("--no-rewrite", dest="rewrite", action="store_false",
        help="skip rewriting the request into a task spec")
    add("--no-thinking", dest="thinking", action="store_false",
        help="ask the model to answer without reasoning first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashcode", description=DESCRIPTION,
        epilog=EXAMPLES + "\n" + exitcodes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # else `engine logits --mode` is read as an abbreviated `--model`
    )
    parser.add_argument("--version", action="version", version=f"flashcode {_version()}")
    _add_model_flags(parser)
    _add_agent_flags(parser)
    parser.add_argument("--plain", action="store_true",
                        help="line interface instead of the full-screen app (automatic when "
                             "stdout is not a terminal)")
    parser.add_argument("--resume", nargs="?", const="", metavar="ID",
                        help="resume a session (the latest if no ID is given)")
    parser.add_argument("--continue", dest="continue_", action="store_true",
                        help="continue the most recent session in this repository")
    parser.set_defaults(handler=_run_interactive)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_cmd_fix, _cmd_propose, _cmd_exec, _cmd_serve, _cmd_bench, _cmd_engine,
                _cmd_doctor):
        add(sub)
    cli_repo.add_commands(sub, _subparser)
    return parser


def _subparser(sub, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=description,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=exitcodes.epilog())


def _cmd_fix(sub) -> None:
    p = _subparser(sub, "fix", "fix a problem headlessly, verify it, apply it",
                   "Work on TASK until it is done and verified, then leave the change in the "
                   "working tree.\nVerified: the test command (--test, else detected) exits 0; "
                   "with no test command,\nthe agent's last check (tests tool or shell command) "
                   "after its last edit exited 0.\nAnything short of verified puts the working "
                   "tree back as it was (a checkpoint taken\nat the start). Files with "
                   "uncommitted changes of yours are not edited or committed\nunless "
                   "--allow-dirty. Nothing is asked: without --yes, an action the --approval "
                   "mode\nwould ask about stops the run (exit 3).")
    p.add_argument("task", metavar="TASK", help="what to fix, in your words")
    p.add_argument("--test", metavar="CMD", help="test command that must pass (default: detected)")
    p.add_argument("--yes", action="store_true", help="approve every action the policy would ask")
    p.add_argument("--json", action="store_true", help="JSON events, one per line, then a summary")
    p.add_argument("--allow-dirty", action="store_true",
                   help="let the agent change files that have uncommitted changes of yours")
    _add_model_flags(p)
    _add_agent_flags(p)
    p.set_defaults(handler=_run_fix)


def _run_fix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.fix import run_fix

    cwd = Path(args.cwd) if getattr(args, "cwd", None) else Path.cwd()
    return run_fix(load_settings_for(args), args.task, cwd, test=args.test, yes=args.yes,
                   as_json=args.json, allow_dirty=args.allow_dirty)


def _cmd_propose(sub) -> None:
    p = _subparser(sub, "propose", "work on a task in a separate git worktree and branch",
                   "Work on TASK in a new worktree on branch flashcode/<slug>, never touching your "
                   "working tree, index, stash or current branch. Produces commits, a .patch file "
                   "and a summary for `flashcode review`. File edits there are allowed under the "
                   "default approval mode (they cannot reach your files); shell commands still "
                   "need --yes or --approval full-auto.")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--yes", action="store_true", help="approve every action the policy would ask")
    p.add_argument("--json", action="store_true", help="JSON events, one per line, then a summary")
    _add_model_flags(p)
    _add_agent_flags(p)
    p.set_defaults(handler=_run_propose)


def _run_propose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.propose import run_propose

    cwd = Path(args.cwd) if getattr(args, "cwd", None) else Path.cwd()
    return run_propose(load_settings_for(args), args.task, cwd, yes=args.yes, as_json=args.json)


def _cmd_exec(sub) -> None:
    p = _subparser(sub, "exec", "run one prompt headlessly and print the answer",
                   "Run PROMPT through the agent without the app: progress on stderr, the\n"
                   "answer on stdout. With --json, print one JSON event per line (assistant\n"
                   "turns, tool calls and results, usage, then a result). PROMPT goes as given\n"
                   "(no task-spec rewrite), and nothing is asked: an action the --approval mode\n"
                   "would ask about stops the run with exit code 3. Each run is a session\n"
                   "(--resume/--continue add to one; --model replay:SESSION.jsonl replays one).")
    p.add_argument("prompt", metavar="PROMPT")
    p.add_argument("--json", action="store_true", help="JSON events, one per line")
    p.add_argument("--resume", nargs="?", const="", metavar="ID", default=argparse.SUPPRESS,
                   help="add PROMPT to a session (the latest if no ID is given)")
    p.add_argument("--continue", dest="continue_", action="store_true",
                   default=argparse.SUPPRESS, help="add PROMPT to the most recent session")
    p.add_argument("--fork", metavar="ID[:N]", default=argparse.SUPPRESS,
                   help="add PROMPT to a copy of session ID (of its first N messages)")
    _add_model_flags(p)
    _add_agent_flags(p)
    p.set_defaults(handler=_run_exec)


def _run_exec(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.headless import run_exec

    cwd = Path(args.cwd) if getattr(args, "cwd", None) else Path.cwd()
    return run_exec(load_settings_for(args), args.prompt, cwd, as_json=args.json,
                    resume=getattr(args, "resume", None),
                    cont=getattr(args, "continue_", False), fork=getattr(args, "fork", None))


def _cmd_serve(sub) -> None:
    p = _subparser(sub, "serve", "serve a local checkpoint over an OpenAI-compatible HTTP API",
                   "Serve /v1/chat/completions and /v1/models from the in-process engine.")
    p.add_argument("--model", metavar="DIR", default=argparse.SUPPRESS,
                   help="checkpoint directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free)")
    p.add_argument("--context-window", type=int, metavar="N",
                   help="refuse prompts longer than N tokens (default: the model's)")
    p.add_argument("--name", metavar="NAME", help="model id to report (default: DIR's name)")
    p.add_argument("--device-map", metavar="SPEC", help=DEVICE_MAP_HELP)
    p.add_argument("--kernels", choices=["auto", "triton", "ref"], default="auto",
                   help="auto (Triton on CUDA, PyTorch on CPU), triton, ref")

    def handler(a: argparse.Namespace) -> int:
        if not getattr(a, "model", None):
            p.error("give the checkpoint: --model DIR")
        from engine.serve.server import main

        return main(a.model, a.host, a.port, a.context_window, a.name, a.device_map, a.kernels)

    p.set_defaults(handler=handler)


def _cmd_bench(sub) -> None:
    p = _subparser(sub, "bench", "run a benchmark from bench/ and print ratios against a peer",
                   "Benchmarks compare flashcode with a peer measured in the same run: engine "
                   "(vs transformers), kernels (vs PyTorch twins and the roofline; needs CUDA), "
                   "repomap and edits (vs Aider, installed into bench/out by the bench), tui. "
                   "Arguments after NAME go to the benchmark; try `flashcode bench NAME --help`.")
    p.add_argument("name", choices=["engine", "kernels", "repomap", "edits", "tui"],
                   help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / f"{args.name}.py"
    if not script.parent.is_dir():
        print(f"flashcode bench: {script.parent} is not here: benchmarks run from a source "
              "checkout (git clone, then scripts/run bench NAME).", file=sys.stderr)
        return exitcodes.NOT_IMPLEMENTED
    if not script.is_file():
        print(f"flashcode bench {args.name}: not available yet in this build. Nothing was done.",
              file=sys.stderr)
        return exitcodes.NOT_IMPLEMENTED
    return subprocess.call([sys.executable, str(script), *args.args])


def _cmd_engine(sub) -> None:
    p = _subparser(sub, "engine", "engine tools: make tiny checkpoints, dump logits, inspect",
                   "Low-level commands for the in-process DeepSeek-V4 engine.")
    esub = p.add_subparsers(dest="engine_command", metavar="ENGINE_COMMAND", required=True)
    mk = esub.add_parser("make-tiny", help="write a small random checkpoint in the official format")
    mk.add_argument("out", metavar="OUT")
    mk.add_argument("--preset", default="tiny", help="config preset (default: tiny)")
    mk.add_argument("--seed", type=int, default=0)
    mk.set_defaults(handler=lambda a: _engine_command("make_tiny", a.out, a.preset, a.seed))
    lg = esub.add_parser("logits", help="save full-sequence logits [T, vocab] as float32 .npy")
    lg.add_argument("--model", metavar="DIR", required=True)
    lg.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    lg.add_argument("--mode", choices=["reference", "official"], default="official")
    lg.add_argument("--out", metavar="F.npy", required=True)
    lg.set_defaults(handler=lambda a: _engine_command("logits", a.model, a.tokens, a.mode, a.out))
    ins = esub.add_parser("inspect", help="print config, layer pattern and parameter bytes")
    ins.add_argument("dir", metavar="DIR")
    ins.set_defaults(handler=lambda a: _engine_command("inspect", a.dir))


def _engine_command(name: str, *args) -> int:
    """Run engine.commands.<name> (imports torch, so only when asked for)."""
    from engine import commands

    return getattr(commands, name)(*args)


def _cmd_doctor(sub) -> None:
    p = _subparser(sub, "doctor", "check Python, torch, GPUs, model and tools; say what to fix",
                   "Report what flashcode can use on this machine and how to fix what is missing. "
                   "Exits 0 when a model backend is usable, 4 when none is.")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_run_doctor)


def _flags(args: argparse.Namespace) -> dict:
    names = ("model", "endpoint", "model_name", "approval", "max_steps", "rewrite", "thinking",
             "device_map", "kernels")
    return {n: getattr(args, n, None) for n in names}


def load_settings_for(args: argparse.Namespace):
    """Settings for this invocation (the layers of agent.config, plus these flags)."""
    from pathlib import Path

    from agent.config import default_sources, load_settings

    sources = default_sources(Path(args.cwd) if getattr(args, "cwd", None) else None)
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            from agent.config import ConfigError
            raise ConfigError(f"--config {path}: no such file.")
        sources = type(sources)(sources.user_file, path, sources.environ)
    return load_settings(sources, _flags(args))


def _run_doctor(args: argparse.Namespace) -> int:
    from agent.doctor import run_doctor

    return run_doctor(load_settings_for(args), as_json=args.json)


def _run_interactive(args: argparse.Namespace) -> int:
    from agent.doctor import backend_problem

    settings = load_settings_for(args)
    problem = backend_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return exitcodes.BACKEND_UNAVAILABLE
    from pathlib import Path

    from agent.interactive import run

    resume = args.resume if args.resume is not None else ("" if args.continue_ else None)
    return run(settings, Path(getattr(args, "cwd", ".")).resolve(), plain=args.plain,
               resume=resume)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("flashcode: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        from agent.config import ConfigError  # imported here: pydantic is slow to import

        if isinstance(exc, ConfigError):
            print(f"flashcode: configuration error: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        raise


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flashcode")
    except PackageNotFoundError:
        return "0+unknown"


if __name__ == "__main__":
    sys.exit(main())
