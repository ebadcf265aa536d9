"""Every tool that takes a path refuses `..`, absolute paths elsewhere and symlinks leading out,
and no listing or search shows what lies behind such a link."""

from __future__ import annotations

import os

import pytest

from tools.base import PathOutsideRepoError, ToolContext, ToolError, call

PATCH_ADD = "*** Begin Patch\n*** Add File: {p}\n+x\n*** End Patch"


def _calls(p: str):
    return [
        ("read", {"path": p}), ("list", {"path": p}), ("glob", {"pattern": "*", "path": p}),
        ("search", {"pattern": "x", "path": p}), ("edit", {"path": p, "old": "a", "new": "b"}),
        ("apply_patch", {"patch": PATCH_ADD.format(p=p)}),
        ("shell", {"command": "true", "cwd": p}), ("git", {"op": "diff", "paths": [p]}),
        ("git_change", {"op": "commit", "message": "m", "paths": [p]}),
        ("repomap", {"path": p}), ("repomap", {"files": [p]}),
    ]


@pytest.fixture
def repo(git_repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOPSECRET a\n")
    os.symlink(outside / "secret.txt", git_repo / "leak.txt")
    os.symlink(outside, git_repo / "leakdir")
    return git_repo


@pytest.mark.parametrize("bad", ["../outside/secret.txt", "/etc/passwd", "leak.txt",
                                 "leakdir", "leakdir/secret.txt"])
@pytest.mark.parametrize("index", range(len(_calls("x"))))
def test_every_tool_refuses(repo, bad, index):
    name, args = _calls(bad)[index]
    with pytest.raises(PathOutsideRepoError):
        call(name, args, ToolContext(repo, sandbox="off"))


@pytest.mark.parametrize("engine", ["python", "ripgrep"])
def test_links_out_are_invisible_to_listings(repo, engine):
    ctx = ToolContext(repo)
    assert call("glob", {"pattern": "*"}, ctx).files == ["README.md"]
    assert call("list", {}, ctx).entries == ["README.md"]
    try:
        found = call("search", {"pattern": "TOPSECRET", "engine": engine}, ctx)
    except ToolError:
        pytest.skip("ripgrep not installed")
    assert found.matches == []
