"""`flashcode`: the parser and the dispatch. Each command's work is in its own module here
(exec, fix, propose, review, undo, tool, doctor, interactive), imported only when it runs; the
engine's own commands (serve, engine, bench) hand over to engine/ and bench/ the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import exitcodes
from agent.cli.args import (
    DEVICE_MAP_HELP,
    add_agent_flags,
    add_model_flags,
    subparser,
)

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


def _run(module: str, function: str = "run"):
    """The handler of a command: agent.cli.<module>.<function>(args), imported only when the
    command runs (so --help and the other commands never load it)."""
    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"agent.cli.{module}"), function)(args)
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashcode", description=DESCRIPTION,
        epilog=EXAMPLES + "\n" + exitcodes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # else `engine logits --mode` is read as an abbreviated `--model`
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show flashcode's version and exit")
    add_model_flags(parser)
    add_agent_flags(parser)
    parser.add_argument("--plain", action="store_true",
                        help="line interface instead of the full-screen app (automatic when "
                             "stdout is not a terminal)")
    parser.add_argument("--resume", nargs="?", const="", metavar="ID",
                        help="resume a session (the latest if no ID is given)")
    parser.add_argument("--continue", dest="continue_", action="store_true",
                        help="continue the most recent session in this repository")
    parser.set_defaults(handler=_run("interactive"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_fix, _propose, _exec, _serve, _bench, _engine, _doctor, _trust, _tool, _undo,
                _review, _proposals):
        add(sub)
    return parser


# --- the agent's commands ------------------------------------------------------------------

def _fix(sub) -> None:
    p = subparser(sub, "fix", "fix a problem headlessly, verify it, apply it",
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
    add_model_flags(p)
    add_agent_flags(p)
    p.set_defaults(handler=_run("fix"))


def _propose(sub) -> None:
    p = subparser(sub, "propose", "work on a task in a separate git worktree and branch",
                  "Work on TASK in a new worktree on branch flashcode/<slug>, never touching your "
                  "working tree, index, stash or current branch. Produces commits, a .patch file "
                  "and a summary for `flashcode review`. File edits there are allowed under the "
                  "default approval mode (they cannot reach your files); shell commands still "
                  "need --yes or --approval full-auto.")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--yes", action="store_true", help="approve every action the policy would ask")
    p.add_argument("--json", action="store_true", help="JSON events, one per line, then a summary")
    add_model_flags(p)
    add_agent_flags(p)
    p.set_defaults(handler=_run("propose"))


def _exec(sub) -> None:
    p = subparser(sub, "exec", "run one prompt headlessly and print the answer",
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
    add_model_flags(p)
    add_agent_flags(p)
    p.set_defaults(handler=_run("exec"))


def _doctor(sub) -> None:
    p = subparser(sub, "doctor", "check Python, torch, GPUs, model and tools; say what to fix",
                  "Report what flashcode can use on this machine and how to fix what is missing. "
                  "Exits 0 when a model backend is usable, 4 when none is.")
    add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_run("doctor"))


# --- the repository's commands -------------------------------------------------------------

def _trust(sub) -> None:
    p = subparser(sub, "trust", "let a repository's .flashcode.toml set every key",
                  "A repository's .flashcode.toml is a stranger's until you trust the "
                  "repository: until then it may set only harmless keys (rewrite, thinking, "
                  "theme, test_command, ...) and limits that tighten (max_steps, a stricter "
                  "approval, sandbox = \"on\", deny rules); flashcode names the keys it "
                  "ignored. Trusting lets it set every key, endpoint and approval included.")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="the repository (default: the one you are in)")
    p.add_argument("--revoke", action="store_true", help="stop trusting PATH")
    p.add_argument("--list", action="store_true", help="list the trusted repositories")
    p.set_defaults(handler=_run("trust"))


def _tool(sub) -> None:
    p = subparser(sub, "tool", "run one repository tool and print its JSON result",
                  "Run a repository tool (read, search, edit, apply_patch, shell, git, tests, "
                  "repomap, ...) outside the agent, for debugging and scripting. Prints the "
                  "result as JSON; on failure prints {\"error\": ..., \"type\": ...} and "
                  "exits 1.\n\n  flashcode tool read --args '{\"path\": \"README.md\"}'\n"
                  "  flashcode tool --list")
    p.add_argument("name", nargs="?", metavar="NAME", help="the tool to run")
    p.add_argument("--args", default="{}", metavar="JSON", help="the tool's arguments (a JSON "
                   "object; default {})")
    p.add_argument("-C", dest="directory", metavar="DIR",
                   help="run in the git repository containing DIR (default: the current one)")
    p.add_argument("--list", action="store_true", help="list the tools with their parameters")
    p.set_defaults(handler=_run("tool"))


def _undo(sub) -> None:
    p = subparser(sub, "undo", "restore files to a checkpoint taken before an agent's write",
                  "flashcode records the working tree before every write by the agent (edits, "
                  "patches, shell commands) under a private git ref, without touching your index, "
                  "stash or branches. `flashcode undo` restores the files to the most recent "
                  "checkpoint; give a number from --list (0 = newest) or a checkpoint id to go "
                  "further back. Undo takes a checkpoint first, so it can be undone too.")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="position from --list or checkpoint id (default: the newest)")
    p.add_argument("--list", action="store_true", help="list checkpoints, newest first")
    p.add_argument("-C", "--cwd", metavar="DIR", default=argparse.SUPPRESS,
                   help="repository (default: the current directory)")
    p.set_defaults(handler=_run("undo"))


def _review(sub) -> None:
    p = subparser(sub, "review", "review a proposal hunk by hunk and apply what you accept",
                  "Show what a proposal (default: the newest) changes, one hunk at a time, and "
                  "apply the hunks you accept to your working tree (never the index). In a "
                  "script, pick hunks with --accept after looking at --show.")
    p.add_argument("branch", nargs="?", metavar="BRANCH", help="flashcode/<slug> (default: newest)")
    p.add_argument("--accept", metavar="N,M|all|none", help="apply these hunks without asking")
    p.add_argument("--show", action="store_true", help="only list the numbered hunks")
    p.add_argument("-C", "--cwd", metavar="DIR", default=argparse.SUPPRESS, help="repository")
    p.set_defaults(handler=_run("review"))


def _proposals(sub) -> None:
    p = subparser(sub, "proposals", "list proposals, or discard one",
                  "List the proposals made by `flashcode propose` in this repository; "
                  "--discard removes one's worktree, branch and patch file.")
    p.add_argument("--discard", metavar="BRANCH", help="remove this proposal")
    p.add_argument("-C", "--cwd", metavar="DIR", default=argparse.SUPPRESS, help="repository")
    p.set_defaults(handler=_run("review", "proposals_command"))


# --- the engine's commands -----------------------------------------------------------------

def _serve(sub) -> None:
    p = subparser(sub, "serve", "serve a local checkpoint over OpenAI and Anthropic HTTP APIs",
                  "Serve the in-process engine over OpenAI Chat Completions "
                  "(/v1/chat/completions), OpenAI Responses (/v1/responses), Anthropic Messages "
                  "(/v1/messages, /v1/messages/count_tokens) and /v1/models.")
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
    p.add_argument("--eager", dest="decode", action="store_const", const="eager",
                   help="decode steps without torch.compile or CUDA graphs (default: "
                   "$FLASHCODE_DECODE, else compiled and graph-captured on a GPU, eager on "
                   "the CPU)")
    p.add_argument("--api-key", metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on every endpoint but /health "
                   "(default: $FLASHCODE_SERVE_API_KEY; needed to listen beyond loopback)")
    p.add_argument("--max-tokens-default", type=_positive, default=4096, metavar="N",
                   help="tokens to generate for a request that names no max_tokens (a "
                   "request may ask for more; default: 4096)")
    p.add_argument("--max-tokens-limit", type=_positive, metavar="N",
                   help="the most tokens any request may generate: one asking for more gets "
                   "N (default: up to the context window)")

    def handler(a: argparse.Namespace) -> int:
        if not getattr(a, "model", None):
            p.error("give the checkpoint: --model DIR")
        from engine.serve.server import main

        return main(a.model, a.host, a.port, a.context_window, a.name, a.device_map, a.kernels,
                    a.api_key, a.max_tokens_default, a.max_tokens_limit, a.decode)
    p.set_defaults(handler=handler)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _bench(sub) -> None:
    p = subparser(sub, "bench", "run a benchmark from bench/ and print ratios against a peer",
                  "Benchmarks compare flashcode with a peer measured in the same run: engine "
                  "(vs transformers), kernels (vs PyTorch twins and the roofline; needs CUDA), "
                  "repomap and edits (vs Aider, installed into bench/out by the bench), tui. "
                  "Arguments after NAME go to the benchmark; try `flashcode bench NAME --help`.")
    p.add_argument("name", choices=["engine", "kernels", "repomap", "edits", "tui"],
                   help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")

    def handler(args: argparse.Namespace) -> int:
        import subprocess
        from pathlib import Path

        script = Path(__file__).resolve().parents[2] / "bench" / f"{args.name}.py"
        if not script.is_file():
            print(f"flashcode bench: {script} is not here: benchmarks run from a source "
                  "checkout (git clone, then scripts/run bench NAME).", file=sys.stderr)
            return exitcodes.USAGE
        return subprocess.call([sys.executable, str(script), *args.args])
    p.set_defaults(handler=handler)


def _engine(sub) -> None:
    p = subparser(sub, "engine", "engine tools: make tiny checkpoints, dump logits, inspect",
                  "Low-level commands for the in-process DeepSeek-V4 engine.")
    esub = p.add_subparsers(dest="engine_command", metavar="ENGINE_COMMAND", required=True)
    mk = esub.add_parser("make-tiny", help="write a small random checkpoint in the official format")
    mk.add_argument("out", metavar="OUT")
    mk.add_argument("--preset", default="tiny", help="config preset (default: tiny)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--tokenizer", choices=["v4", "small"], default="v4",
                    help="v4: DeepSeek-V4's own tokenizer (129,280 ids, the default); small: a "
                         "BPE trained on the spot with the preset's vocab size (fastest tests)")
    mk.set_defaults(handler=lambda a: _engine_command("make_tiny", a.out, a.preset, a.seed,
                                                      a.tokenizer))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # `flashcode tool --list | head`: the reader left, nothing to say
        _quiet_stdout()
        return exitcodes.OK
    except KeyboardInterrupt:
        print("flashcode: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        from agent.config import ConfigError  # imported here: pydantic is slow to import

        if isinstance(exc, ConfigError):
            print(f"flashcode: configuration error: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        raise


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _Version(argparse.Action):
    """--version, looked up only when asked (reading package metadata takes ~40 ms, which
    every start would otherwise pay)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"flashcode {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flashcode")
    except PackageNotFoundError:
        return "0+unknown"
