"""No tool reads or writes the repository's git directory, however the path is spelled.

A model that could write `.git/config` could set `core.fsmonitor` (or a hook) and have code
run outside the sandbox the next time flashcode itself runs git. So `ToolContext.resolve`
refuses `.git` and everything under it: `./.git`, `x/../.git`, case variants, the `.git` file
of a linked worktree, and links inside the repository leading there; and no listing, glob or
search walks into it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tools.base import ToolContext, ToolError, call

GIT_DIR_ERROR = "git directory"
SPELLINGS = [".git/config", "./.git/config", "x/../.git/config", "README.md/../.git/config",
             ".GIT/config", ".Git/config", ".git/hooks/pre-commit", ".git/info/attributes",
             ".git", "gitlink/config", "cfglink", f"{'x/' * 3}../../../.git/config"]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and link under `root` (links by their text), hashed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
            out[p.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture
def repo(git_repo):
    """gitlink -> .git (a directory link), cfglink -> .git/config (a file link)."""
    os.symlink(".git", git_repo / "gitlink")
    os.symlink(".git/config", git_repo / "cfglink")
    (git_repo / ".git" / "description").write_text("NEEDLE in the git dir\n")
    return git_repo


def _envelope(body: str) -> dict:
    return {"patch": f"*** Begin Patch\n{body}*** End Patch"}


def _calls(p: str) -> list[tuple[str, dict]]:
    fsmonitor = "[core]\n\tfsmonitor = touch PWNED\n"
    return [
        ("read", {"path": p}),
        ("edit", {"path": p, "old": "[core]", "new": fsmonitor}),
        ("apply_patch", _envelope(f"*** Add File: {p}\n+[core]\n+\tfsmonitor = touch PWNED\n")),
        ("apply_patch", _envelope(f"*** Update File: {p}\n@@\n [core]\n+\tfsmonitor = x\n")),
        ("apply_patch", _envelope(f"*** Delete File: {p}\n")),
        ("apply_patch", _envelope(f"*** Update File: README.md\n*** Move to: {p}\n@@\n hello\n")),
        ("apply_patch", {"patch": f"--- a/{p}\n+++ b/{p}\n@@ -1 +1,2 @@\n [core]\n+x\n"}),
        ("list", {"path": p}),
        ("search", {"pattern": "core", "path": p}),
        ("glob", {"pattern": "*", "path": p}),
        ("repomap", {"path": p}),
        ("shell", {"command": "true", "cwd": p}),
    ]


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("index", range(len(_calls("x"))))
def test_every_tool_refuses_the_git_dir(repo, spelling, index):
    name, args = _calls(spelling)[index]
    before = _snapshot(repo)
    with pytest.raises(ToolError, match=GIT_DIR_ERROR) as err:
        call(name, args, ToolContext(repo, sandbox="off"))
    assert "git_change" in str(err.value)  # it says which tool to use instead
    assert _snapshot(repo) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_resolve_refuses_every_spelling(repo, spelling):
    ctx = ToolContext(repo)
    for follow in (True, False):
        with pytest.raises(ToolError, match=GIT_DIR_ERROR):
            ctx.resolve(spelling, follow=follow)


def test_the_git_file_of_a_linked_worktree_is_refused(repo, tmp_path):
    wt = tmp_path / "wt"
    subprocess.run(["git", "worktree", "add", "-q", "-b", "side", str(wt)], cwd=repo,
                   check=True)
    ctx, gitfile = ToolContext(wt, sandbox="off"), (wt / ".git").read_bytes()
    assert (wt / ".git").is_file()
    for name, args in [("read", {"path": ".git"}),
                       ("edit", {"path": ".git", "old": "gitdir", "new": "gitdir: /tmp/x\n#"}),
                       ("apply_patch", _envelope("*** Add File: .git\n+gitdir: /tmp/evil\n")),
                       ("apply_patch", _envelope("*** Delete File: .git\n")),
                       ("apply_patch", _envelope("*** Add File: .git/config\n+[core]\n"))]:
        with pytest.raises(ToolError, match=GIT_DIR_ERROR):
            call(name, args, ctx)
    assert (wt / ".git").read_bytes() == gitfile


def test_nested_and_case_variant_git_dirs_are_refused(repo):
    (repo / "sub").mkdir()
    subprocess.run(["git", "init", "-q", "sub"], cwd=repo, check=True)
    (repo / ".GIT").mkdir()
    (repo / ".GIT" / "x.txt").write_text("NEEDLE\n")
    ctx = ToolContext(repo)
    for path in ("sub/.git/config", ".GIT/x.txt", "sub/.Git/HEAD"):
        with pytest.raises(ToolError, match=GIT_DIR_ERROR):
            call("read", {"path": path}, ctx)


def test_ordinary_names_that_look_alike_are_allowed(repo):
    ctx = ToolContext(repo)
    for name in (".gitignore", ".github/ci.yml", "a.git", ".git.bak/x", "git/x", ".gits"):
        call("apply_patch", _envelope(f"*** Add File: {name}\n+ok\n"), ctx)
        assert call("read", {"path": name}, ctx).content.endswith("ok")


@pytest.mark.parametrize("engine", ["python", "ripgrep"])
def test_walks_never_enter_a_git_dir(repo, engine):
    """Listings, globs and searches skip .git at any depth and in any case, and links into it."""
    (repo / "sub").mkdir()
    subprocess.run(["git", "init", "-q", "sub"], cwd=repo, check=True)
    (repo / "sub" / ".git" / "description").write_text("NEEDLE nested\n")
    (repo / ".GIT").mkdir()
    (repo / ".GIT" / "x.txt").write_text("NEEDLE upper\n")
    (repo / "ok.txt").write_text("NEEDLE ok\n")
    ctx = ToolContext(repo)
    found = call("search", {"pattern": "NEEDLE", "engine": engine}, ctx)
    assert [m.path for m in found.matches] == ["ok.txt"]
    files = call("glob", {"pattern": "**/*"}, ctx).files
    assert files == ["README.md", "ok.txt"]
    entries = call("list", {"depth": 20}, ctx).entries
    assert entries == ["README.md", "ok.txt", "sub/"]
