"""The `flashcode` commands about the repository itself rather than the model: `tool` (run one
repository tool), `undo` (checkpoints), `review` and `proposals`. Split from agent/cli.py by
concern; like it, this module imports only the standard library until a command runs."""

from __future__ import annotations

import argparse


def add_commands(sub, make) -> None:
    """Register the commands; `make(sub, name, help, description)` builds a subparser."""
    for add in (_cmd_tool, _cmd_undo, _cmd_review, _cmd_proposals):
        add(sub, make)


def _cmd_undo(sub, make) -> None:
    p = make(sub, "undo", "restore files to a checkpoint taken before an agent's write",
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
    p.set_defaults(handler=_run_undo)


def _run_undo(args: argparse.Namespace) -> int:
    from agent.undo_cli import run_undo

    return run_undo(_repo(args), args.checkpoint, args.list)


def _cmd_review(sub, make) -> None:
    p = make(sub, "review", "review a proposal hunk by hunk and apply what you accept",
                   "Show what a proposal (default: the newest) changes, one hunk at a time, and "
                   "apply the hunks you accept to your working tree (never the index). In a "
                   "script, pick hunks with --accept after looking at --show.")
    p.add_argument("branch", nargs="?", metavar="BRANCH", help="flashcode/<slug> (default: newest)")
    p.add_argument("--accept", metavar="N,M|all|none", help="apply these hunks without asking")
    p.add_argument("--show", action="store_true", help="only list the numbered hunks")
    p.add_argument("-C", "--cwd", metavar="DIR", default=argparse.SUPPRESS, help="repository")
    p.set_defaults(handler=lambda a: _review_cli().run_review(
        _repo(a), a.branch, a.accept, a.show))


def _cmd_proposals(sub, make) -> None:
    p = make(sub, "proposals", "list proposals, or discard one",
                   "List the proposals made by `flashcode propose` in this repository; "
                   "--discard removes one's worktree, branch and patch file.")
    p.add_argument("--discard", metavar="BRANCH", help="remove this proposal")
    p.add_argument("-C", "--cwd", metavar="DIR", default=argparse.SUPPRESS, help="repository")
    p.set_defaults(handler=lambda a: _review_cli().run_proposals(_repo(a), a.discard))


def _review_cli():
    from agent import review_cli

    return review_cli


def _repo(args: argparse.Namespace):
    from pathlib import Path

    return Path(getattr(args, "cwd", "."))


def _cmd_tool(sub, make) -> None:
    p = make(sub, "tool", "run one repository tool and print its JSON result",
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

    def handler(args: argparse.Namespace) -> int:
        from agent import tool_cli

        if args.list:
            return tool_cli.list_tools()
        if not args.name:
            p.error("give a tool NAME, or --list")
        return tool_cli.run_tool(args.name, args.args, args.directory)

    p.set_defaults(handler=handler)
