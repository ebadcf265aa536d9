"""`tests`: find the project's test command, run it, and return a parsed summary.

Detection, first hit wins: the `command` argument; `test_command` in .flashcode.toml; pytest
(pytest.ini, pyproject's [tool.pytest], setup.cfg/tox.ini sections, conftest.py, test_*.py);
package.json's test script (pnpm / yarn / npm by lock file); go.mod; Cargo.toml; a Makefile
with a `test:` target.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from tools import sandbox
from tools.base import ToolContext, ToolError, register
from tools.shell import head_tail, run_command
from tools.test_report import summarize


class TestsArgs(BaseModel):
    command: str | None = Field(None, description="test command; default: detected")
    args: list[str] = Field(default_factory=list,
                            description="extra arguments, e.g. a test file or -k expression")
    timeout_s: float = Field(600, gt=0, le=7200)
    max_output: int = Field(20_000, ge=500, le=1_000_000)

    _no_sandbox = model_validator(mode="before")(sandbox.refuse_sandbox_argument)


class Failure(BaseModel):
    name: str
    output: str  # trimmed


class TestsResult(BaseModel):
    command: str
    framework: str  # pytest, npm, go, cargo, make, configured
    exit_code: int | None
    passed: int | None  # None when the output could not be parsed
    failed: int | None
    errors: int | None
    skipped: int | None
    failures: list[Failure]
    timed_out: bool
    output: str  # head and tail of the whole output
    spill_path: str | None
    sandbox: str


def _python(root: Path) -> str:
    for venv in (".venv", "venv"):
        exe = root / venv / "bin" / "python"
        if exe.exists():
            return str(exe)
    return "pytest" if shutil.which("pytest") else sys.executable


def _is_pytest(root: Path) -> bool:
    if (root / "pytest.ini").exists() or (root / "conftest.py").exists():
        return True
    for name, marker in (("pyproject.toml", "[tool.pytest"), ("setup.cfg", "[tool:pytest]"),
                         ("tox.ini", "[pytest]")):
        if (root / name).exists() and marker in (root / name).read_text(errors="replace"):
            return True
    return any(root.glob("test_*.py")) or any(root.glob("tests/**/test_*.py"))


def _npm(root: Path) -> str | None:
    try:
        script = json.loads((root / "package.json").read_text()).get("scripts", {}).get("test")
    except (OSError, ValueError):
        return None
    if not script or "no test specified" in script:
        return None
    for lock, tool in (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn")):
        if (root / lock).exists():
            return f"{tool} test"
    return "npm test"


def detect(root: Path) -> tuple[str, str]:
    """(framework, command) for the repository at `root`, or ToolError."""
    config = root / ".flashcode.toml"
    if config.exists():
        configured = tomllib.loads(config.read_text()).get("test_command")
        if configured:
            return "configured", configured
    if _is_pytest(root):
        py = _python(root)
        return "pytest", ("pytest" if py == "pytest" else f"{shlex.quote(py)} -m pytest") + \
            " -q -rfE"
    npm = _npm(root)
    if npm:
        return "npm", npm
    if (root / "go.mod").exists():
        return "go", "go test -v ./..."
    if (root / "Cargo.toml").exists():
        return "cargo", "cargo test"
    for name in ("Makefile", "makefile", "GNUmakefile"):
        if (root / name).exists() and re.search(r"^test\s*:", (root / name).read_text(), re.M):
            return "make", "make test"
    raise ToolError("No test command found (no pytest, package.json test script, go.mod, "
                    "Cargo.toml or Makefile test target). Pass `command`, or set test_command "
                    "in .flashcode.toml.")


@register("tests", TestsArgs, "exec")
def run_tests(ctx: ToolContext, args: TestsArgs) -> TestsResult:
    framework, command = ("configured", args.command) if args.command else detect(ctx.root)
    command = " ".join([command, *map(shlex.quote, args.args)])
    mode = sandbox.choose(ctx.sandbox)
    ran = run_command(ctx, ["bash", "-c", command], ctx.root, args.timeout_s, mode)
    code, timed_out, out_file = ran.code, ran.timed_out, ran.out_file
    whole = out_file.read_bytes().decode("utf-8", errors="replace")
    summary = summarize(framework, whole)
    output, truncated = head_tail(out_file, args.max_output)
    if not truncated:
        out_file.unlink()
    counts = (summary.passed, summary.failed, summary.errors, summary.skipped) if summary \
        else (None, None, None, None)
    return TestsResult(command=command, framework=framework, exit_code=code,
                       passed=counts[0], failed=counts[1], errors=counts[2], skipped=counts[3],
                       failures=[Failure(name=n, output=o) for n, o in
                                 (summary.failures if summary else [])],
                       timed_out=timed_out, output=output,
                       spill_path=ctx.rel(out_file) if truncated else None, sandbox=mode.name)
