"""Two tools with real effects for the app's tests: `_write_file` (write), `_run` (exec).

The leading underscore keeps them out of the specs real models see (tools.specs).

Registered through tools/base like any tool; `unregister` removes them again.
"""

from __future__ import annotations

from pydantic import BaseModel

from tools import base


class WriteArgs(BaseModel):
    path: str
    text: str


class WriteResult(BaseModel):
    path: str
    written: int


class RunArgs(BaseModel):
    command: str  # a number N: the tool prints N lines


class RunResult(BaseModel):
    output: str


def write_file(ctx: base.ToolContext, args: WriteArgs) -> WriteResult:
    path = ctx.resolve(args.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(args.text)
    return WriteResult(path=ctx.rel(path), written=len(args.text))


def run(ctx: base.ToolContext, args: RunArgs) -> RunResult:
    return RunResult(output="\n".join(f"line {i}" for i in range(int(args.command))))


def register() -> None:
    base.register("_write_file", WriteArgs, "write")(write_file)
    base.register("_run", RunArgs, "exec")(run)


def unregister() -> None:
    base.REGISTRY.pop("_write_file", None)
    base.REGISTRY.pop("_run", None)
