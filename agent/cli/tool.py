"""`flashcode tool NAME --args JSON [-C DIR]`: run one repository tool and print its result as
JSON, for debugging and scripting. `flashcode tool --list` lists the tools.

Exit codes: 0 with the result; 1 with {"error": ..., "type": ...} when the tool refuses or
fails; 2 with the same shape for bad usage (unknown tool, --args that is not a JSON object).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent import exitcodes, wiring


def _fail(message: str, kind: str, code: int) -> int:
    print(json.dumps({"error": message, "type": kind}))
    return code


def run(args) -> int:
    if args.list:
        return list_tools()
    if not args.name:
        return _fail("Give a tool NAME (flashcode tool NAME --args JSON), or --list.",
                     "UsageError", exitcodes.USAGE)
    return run_tool(args.name, args.args, args.directory)


def list_tools() -> int:
    """Print [{name, effect, description, parameters}] for every tool."""
    from tools.base import all_tools
    from tools.specs import tool_specs

    effects = {name: t.effect for name, t in all_tools().items()}
    listing = [{"name": s["function"]["name"], "effect": effects[s["function"]["name"]],
                "description": s["function"]["description"],
                "parameters": s["function"]["parameters"]} for s in tool_specs()]
    print(json.dumps(listing, indent=2))
    return exitcodes.OK


def run_tool(name: str, raw_args: str, directory: str | None) -> int:
    from tools.base import ToolContext, ToolError, call, get

    try:
        get(name)  # imports that tool's module only
    except ToolError as exc:
        return _fail(str(exc), "UsageError", exitcodes.USAGE)
    try:
        args = json.loads(raw_args)
    except json.JSONDecodeError as exc:
        return _fail(f"--args is not valid JSON: {exc}", "UsageError", exitcodes.USAGE)
    if not isinstance(args, dict):
        return _fail("--args must be a JSON object, e.g. '{\"path\": \"README.md\"}'.",
                     "UsageError", exitcodes.USAGE)
    start = Path(directory or ".").resolve()
    if not start.is_dir():
        return _fail(f"-C {directory}: no such directory.", "UsageError", exitcodes.USAGE)
    try:
        result = call(name, args, ToolContext(wiring.repo_root(start)))
    except ToolError as exc:
        return _fail(str(exc), type(exc).__name__, exitcodes.NOT_FIXED)
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    return exitcodes.OK
