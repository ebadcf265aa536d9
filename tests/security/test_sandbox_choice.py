"""The sandbox is the user's setting (ToolContext.sandbox), never the model's: no tool's
argument schema offers it, and a call that passes it anyway is refused, never run outside it."""

from __future__ import annotations

from typing import Any

import pytest

from tools import sandbox
from tools.base import ToolContext, ToolError, call
from tools.specs import tool_specs

BWRAP = sandbox.bwrap_problem()


def _keys(schema: Any) -> set[str]:
    """Every property name anywhere in a JSON schema."""
    if isinstance(schema, dict):
        found = set(schema.get("properties", {})) if isinstance(
            schema.get("properties"), dict) else set()
        return found | {k for v in schema.values() for k in _keys(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _keys(v)}
    return set()


def test_no_tool_spec_offers_the_sandbox():
    specs = tool_specs()
    assert {s["function"]["name"] for s in specs} >= {"shell", "tests"}
    offering = [s["function"]["name"] for s in specs
                if "sandbox" in _keys(s["function"]["parameters"])]
    assert offering == []


@pytest.mark.parametrize("name,args", [
    ("shell", {"command": "echo ran", "sandbox": "off"}),
    ("shell", {"command": "echo ran", "sandbox": "auto"}),
    ("tests", {"command": "echo ran", "sandbox": "off"}),
])
def test_a_sandbox_argument_is_refused(git_repo, name, args):
    with pytest.raises(ToolError, match="the sandbox is the user's setting"):
        call(name, args, ToolContext(git_repo, sandbox="on"))


@pytest.mark.skipif(BWRAP is not None, reason=f"bubblewrap not usable here: {BWRAP}")
def test_the_users_setting_decides(git_repo):
    on = call("shell", {"command": "true"}, ToolContext(git_repo, sandbox="on"))
    off = call("shell", {"command": "true"}, ToolContext(git_repo, sandbox="off"))
    assert (on.sandbox, off.sandbox) == ("bubblewrap", "none")
    ran = call("tests", {"command": "true"}, ToolContext(git_repo, sandbox="on"))
    assert ran.sandbox == "bubblewrap"
