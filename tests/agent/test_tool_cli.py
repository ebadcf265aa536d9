"""`flashcode tool`: the real CLI in a subprocess, on a temp git repo."""

from __future__ import annotations

import json

import prompts
from tests.conftest import run_flashcode
from tools.base import all_tools


def test_every_tool_has_a_description_template():
    for name in all_tools():
        if not name.startswith("_"):
            assert f"tools/{name}.md.j2" in prompts.names(), name


def test_list(git_repo):
    r = run_flashcode("tool", "--list", cwd=git_repo)
    assert r.returncode == 0, r.stderr
    listing = {t["name"]: t for t in json.loads(r.stdout)}
    assert {"read", "edit", "apply_patch", "shell", "git", "tests", "search"} <= set(listing)
    assert listing["edit"]["effect"] == "write"
    assert "old" in listing["edit"]["parameters"]["properties"]


def test_run_a_tool_from_a_subdirectory(git_repo):
    (git_repo / "sub").mkdir()
    r = run_flashcode("tool", "read", "--args", '{"path": "README.md"}', "-C",
                      str(git_repo / "sub"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["content"] == "     1\thello"


def test_errors_are_json(git_repo):
    r = run_flashcode("tool", "read", "--args", '{"path": "../x"}', cwd=git_repo)
    assert r.returncode == 1
    assert json.loads(r.stdout)["type"] == "PathOutsideRepoError"
    r = run_flashcode("tool", "edit", "--args", '{"path": "README.md", "old": "nope", '
                      '"new": "x"}', cwd=git_repo)
    assert r.returncode == 1 and "not found" in json.loads(r.stdout)["error"]
    r = run_flashcode("tool", "read", "--args", "{not json", cwd=git_repo)
    assert r.returncode == 2 and json.loads(r.stdout)["type"] == "UsageError"
    r = run_flashcode("tool", "frobnicate", cwd=git_repo)
    assert r.returncode == 2 and "no tool named" in json.loads(r.stdout)["error"]


def test_edit_through_the_cli_changes_the_file(git_repo):
    r = run_flashcode("tool", "edit", "--args", json.dumps(
        {"path": "README.md", "old": "hello", "new": "goodbye"}), cwd=git_repo)
    assert r.returncode == 0, r.stdout
    assert "+goodbye" in json.loads(r.stdout)["diff"]
    assert (git_repo / "README.md").read_text() == "goodbye\n"


def test_tool_specs_are_function_schemas():
    from tools.specs import tool_specs

    specs = tool_specs()
    assert [s["function"]["name"] for s in specs] == sorted(
        n for n in all_tools() if not n.startswith("_"))
    for spec in specs:
        fn = spec["function"]
        assert spec["type"] == "function" and fn["description"]
        assert fn["parameters"]["type"] == "object" and "$defs" not in fn["parameters"]
