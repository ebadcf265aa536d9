"""agent.toolrun's guards: a checkpoint before every call that can write, and protected paths
(the user's uncommitted files during `fix`) refused to the file tools with a teaching error."""

from __future__ import annotations

import subprocess

import pytest

from agent import approval, checkpoints, toolrun
from agent.approval import Policy
from agent.model import ToolCall
from tools.base import ToolContext

ALLOW = Policy("full-auto")


def call(name, **args) -> ToolCall:
    return ToolCall("c1", name, args)


@pytest.fixture
def repo(git_repo):
    (git_repo / "a.txt").write_text("one\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "a"], cwd=git_repo, check=True)
    return git_repo


def test_writes_and_commands_are_checkpointed_reads_are_not(repo):
    ctx = ToolContext(repo, sandbox="off")
    toolrun.run_call(call("read", path="a.txt"), ctx, ALLOW, None)
    assert checkpoints.history(repo) == []
    out, _ = toolrun.run_call(call("edit", path="a.txt", old="one", new="two"), ctx, ALLOW, None)
    assert out.ok
    toolrun.run_call(call("shell", command="rm a.txt"), ctx, ALLOW, None)
    assert not (repo / "a.txt").exists()
    labels = [c.label for c in checkpoints.history(repo)]
    assert labels == ["before shell: rm a.txt", "before edit: a.txt"]
    checkpoints.restore(repo, checkpoints.find(repo, 0))
    assert (repo / "a.txt").read_text() == "two\n"


def test_outside_git_nothing_is_checkpointed_and_the_write_runs(tmp_path):
    (tmp_path / "a.txt").write_text("one\n")
    ctx = ToolContext(tmp_path, sandbox="off")
    out, _ = toolrun.run_call(call("edit", path="a.txt", old="one", new="two"), ctx, ALLOW, None)
    assert out.ok and (tmp_path / "a.txt").read_text() == "two\n"


def test_a_failed_checkpoint_stops_the_write(repo):
    (repo / ".git" / "refs" / "flashcode").write_text("a file where a folder must be\n")
    ctx = ToolContext(repo, sandbox="off")
    out, _ = toolrun.run_call(call("edit", path="a.txt", old="one", new="two"), ctx, ALLOW, None)
    assert not out.ok and "could not be checkpointed" in out.content
    assert (repo / "a.txt").read_text() == "one\n"


@pytest.mark.parametrize("tool, args", [
    ("edit", {"path": "./a.txt", "old": "one", "new": "two"}),
    ("apply_patch", {"patch": "*** Begin Patch\n*** Update File: b.txt\n*** Move to: a.txt\n"
                              "@@\n-b\n+c\n*** End Patch"}),
    ("apply_patch", {"patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n"}),
    ("git_change", {"op": "commit", "message": "m", "paths": ["b.txt"]}),
])
def test_protected_paths_are_refused_with_a_teaching_error(repo, tool, args):
    (repo / "b.txt").write_text("b\n")
    policy = Policy("full-auto", protected=frozenset({"a.txt"}))
    ctx = ToolContext(repo, sandbox="off")
    out, _ = toolrun.run_call(call(tool, **args), ctx, policy, None)
    assert not out.ok and "a.txt" in out.content and "uncommitted" in out.content
    assert (repo / "a.txt").read_text() == "one\n" and (repo / "b.txt").exists()


def test_a_protected_link_cannot_be_deleted_through_a_patch(repo):
    """Delete acts on a link itself, so the link's own path is guarded, not only its target."""
    (repo / "link").symlink_to("a.txt")
    policy = Policy("full-auto", protected=frozenset({"link"}))
    ctx = ToolContext(repo, sandbox="off")
    patch = "*** Begin Patch\n*** Delete File: link\n*** End Patch"
    out, _ = toolrun.run_call(call("apply_patch", patch=patch), ctx, policy, None)
    assert not out.ok and "link" in out.content and (repo / "link").is_symlink()


def test_other_paths_and_reads_of_protected_files_go_through(repo):
    (repo / "b.txt").write_text("b\n")
    policy = Policy("full-auto", protected=frozenset({"a.txt"}))
    ctx = ToolContext(repo, sandbox="off")
    assert toolrun.run_call(call("read", path="a.txt"), ctx, policy, None)[0].ok
    out, _ = toolrun.run_call(call("edit", path="b.txt", old="b", new="c"), ctx, policy, None)
    assert out.ok and (repo / "b.txt").read_text() == "c\n"


def test_allow_always_keeps_the_protected_paths():
    policy = Policy("ask", protected=frozenset({"a.txt"}))
    assert approval.allow_always(policy, "shell", {"command": "ls"}).protected == {"a.txt"}


def test_a_patch_checkpoint_is_labelled_with_its_files(repo):
    ctx = ToolContext(repo, sandbox="off")
    patch = "*** Begin Patch\n*** Add File: n.txt\n+n\n*** End Patch"
    assert toolrun.run_call(call("apply_patch", patch=patch), ctx, ALLOW, None)[0].ok
    assert checkpoints.history(repo)[0].label == "before apply_patch: n.txt"


def test_calls_that_change_nothing_add_no_checkpoint(repo):
    ctx = ToolContext(repo, sandbox="off")
    for _ in range(3):
        assert toolrun.run_call(call("shell", command="ls"), ctx, ALLOW, None)[0].ok
    assert [c.label for c in checkpoints.history(repo)] == ["before shell: ls"]
    (repo / "a.txt").write_text("changed by hand\n")
    toolrun.run_call(call("shell", command="ls"), ctx, ALLOW, None)
    assert len(checkpoints.history(repo)) == 2


def test_a_patch_is_parsed_once_for_the_guards_and_the_tool(repo, monkeypatch):
    from tools import patch

    parsed = []
    real = patch.parse
    monkeypatch.setattr(patch, "parse", lambda text: parsed.append(text) or real(text))
    policy = Policy("full-auto", protected=frozenset({"b.txt"}))
    body = "*** Begin Patch\n*** Add File: n.txt\n+n\n*** End Patch"
    out, _ = toolrun.run_call(call("apply_patch", patch=body), ToolContext(repo), policy, None)
    assert out.ok and (repo / "n.txt").read_text() == "n\n" and len(parsed) == 1


def test_a_directory_write_covers_the_protected_files_under_it(repo):
    """Every tool says what it touches (Tool.paths); a touched directory covers its files."""
    (repo / "d").mkdir()
    (repo / "d" / "x.txt").write_text("mine\n")
    from tools.base import ToolContext as Ctx

    assert toolrun.protected_hit(["d"], Ctx(repo), frozenset({"d/x.txt", "a.txt"})) == ["d/x.txt"]
    assert toolrun.protected_hit(["."], Ctx(repo), frozenset({"d/x.txt", "a.txt"})) == \
        ["a.txt", "d/x.txt"]


def test_bad_arguments_are_refused_before_anyone_is_asked(repo):
    asked = []
    out, _ = toolrun.run_call(call("edit", path="a.txt"), ToolContext(repo), Policy("ask"),
                              lambda c, effect, preview: asked.append(c) or "yes")
    assert not out.ok and "Bad arguments for 'edit'" in out.content and asked == []
