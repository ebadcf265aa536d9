"""Path confinement and argument validation shared by every tool."""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel

from tests.conftest import REPO_ROOT
from tools.base import PathOutsideRepoError, ToolContext, ToolError, call, register


def test_paths_inside_are_resolved(git_repo):
    ctx = ToolContext(git_repo)
    assert ctx.resolve("README.md") == git_repo.resolve() / "README.md"
    assert ctx.resolve(git_repo / "README.md") == git_repo.resolve() / "README.md"
    assert ctx.rel(ctx.resolve("sub/../README.md")) == "README.md"


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x"])
def test_paths_leading_out_are_refused(git_repo, bad):
    with pytest.raises(PathOutsideRepoError, match="outside the repository"):
        ToolContext(git_repo).resolve(bad)


def test_symlink_pointing_out_is_refused(git_repo, tmp_path):
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", git_repo / "link")
    with pytest.raises(PathOutsideRepoError):
        ToolContext(git_repo).resolve("link")


def test_missing_path_teaches(git_repo):
    with pytest.raises(ToolError, match="does not exist"):
        ToolContext(git_repo).resolve("nope.txt", must_exist=True)


class EchoArgs(BaseModel):
    text: str


class EchoResult(BaseModel):
    text: str


@register("_echo", EchoArgs, "read")
def _echo(ctx, args: EchoArgs) -> EchoResult:
    return EchoResult(text=args.text)


def test_call_validates_and_runs(git_repo):
    ctx = ToolContext(git_repo)
    assert call("_echo", {"text": "hi"}, ctx).text == "hi"
    with pytest.raises(ToolError, match="Bad arguments for '_echo': text"):
        call("_echo", {}, ctx)
    with pytest.raises(ToolError, match="no tool named 'nope'"):
        call("nope", {}, ctx)


def test_every_tool_lives_where_the_registry_says():
    import importlib

    from tools import base

    for name, module in base.TOOL_MODULES.items():
        importlib.import_module(module)
        assert base.REGISTRY[name].fn.__module__ == module, name
    public = {n for n in base.all_tools() if not n.startswith("_")}
    assert public <= set(base.TOOL_MODULES)  # a new tool must be listed to be found lazily


def test_running_one_tool_imports_only_its_module(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom tools import base\nbase.get('read')\n"
            "print(sorted(m for m in sys.modules if m.startswith('tools.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    loaded = eval(out.stdout)
    assert "tools.files" in loaded and "tools.repomap.tool" not in loaded
    assert "tools.search" not in loaded and "tools.shell" not in loaded
