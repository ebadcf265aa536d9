"""Approval policy: modes by effect, rules by tool and command pattern, deny first."""

from __future__ import annotations

import pytest

from agent.approval import Policy, Rule, allow_always, decide


@pytest.mark.parametrize("mode,expected", [
    ("read-only", ("allow", "deny", "deny")),
    ("ask", ("allow", "ask", "ask")),
    ("auto-edit", ("allow", "allow", "ask")),
    ("full-auto", ("allow", "allow", "allow")),
])
def test_modes_by_effect(mode, expected):
    p = Policy(mode)
    got = tuple(decide(p, t, e, {}) for t, e in [("read", "read"), ("edit", "write"),
                                                  ("shell", "exec")])
    assert got == expected


def test_rules_match_tool_and_command_and_deny_wins():
    p = Policy.from_settings("ask", allow=["shell(git status*)", "shell(pytest *)", "edit"],
                             deny=["shell(git push*)", "edit(secrets/*)"])
    assert decide(p, "shell", "exec", {"command": "git status --short"}) == "allow"
    assert decide(p, "shell", "exec", {"command": "git push origin"}) == "deny"
    assert decide(p, "shell", "exec", {"command": "rm -rf build"}) == "ask"
    assert decide(p, "shell", "exec", {"command": ["pytest", "-q"]}) == "allow"
    assert decide(p, "edit", "write", {"path": "src/a.py"}) == "allow"
    assert decide(p, "edit", "write", {"path": "secrets/key"}) == "deny"
    assert decide(Policy("full-auto", deny=(Rule("shell"),)), "shell", "exec", {}) == "deny"


def test_bad_rules_and_modes_are_errors():
    with pytest.raises(ValueError, match="TOOL\\(GLOB\\)"):
        Rule.parse("shell(")
    with pytest.raises(ValueError, match="unknown approval mode"):
        decide(Policy("yolo"), "read", "read", {})


def test_always_allows_that_command_only():
    p = allow_always(Policy("ask"), "shell", {"command": "make test"})
    assert decide(p, "shell", "exec", {"command": "make test"}) == "allow"
    assert decide(p, "shell", "exec", {"command": "make clean"}) == "ask"
    p = allow_always(Policy("ask"), "edit", {"path": "a.py"})
    assert decide(p, "edit", "write", {"path": "b.py"}) == "allow"
