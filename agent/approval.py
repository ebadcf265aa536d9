"""Approval policy as pure functions: the policy decides what needs asking; the front end asks.

Modes (by a tool's effect: read / write / exec):
    read-only  read → allow, write/exec → deny
    ask        read → allow, write/exec → ask
    auto-edit  read/write → allow, exec → ask
    full-auto  everything → allow
Rules override the mode, deny first: "shell" (every call of a tool), "shell(git status*)"
(shell commands matching a glob), "edit(src/*)" (file tools whose path matches).
`protected` paths (a `fix` run's files with uncommitted user changes) are refused to the file
tools whatever the mode; see `agent.toolrun`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

Decision = Literal["allow", "ask", "deny"]

_MODES: dict[str, dict[str, Decision]] = {
    "read-only": {"read": "allow", "write": "deny", "exec": "deny"},
    "ask": {"read": "allow", "write": "ask", "exec": "ask"},
    "auto-edit": {"read": "allow", "write": "allow", "exec": "ask"},
    "full-auto": {"read": "allow", "write": "allow", "exec": "allow"},
}
_RULE_RE = re.compile(r"^\s*([\w.*?-]+)\s*(?:\((.*)\))?\s*$")
# The argument a rule's pattern is matched against, first one present wins.
_SUBJECT_KEYS = ("command", "cmd", "path", "file", "pattern")


@dataclass(frozen=True)
class Rule:
    tool: str  # glob over tool names
    pattern: str | None = None  # glob over the call's command or path; None matches any call

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = _RULE_RE.match(text)
        if not m:
            raise ValueError(f"bad approval rule {text!r}: write TOOL or TOOL(GLOB), "
                             "e.g. shell(git status*)")
        return cls(m.group(1), m.group(2))

    def matches(self, tool: str, args: dict[str, Any]) -> bool:
        if not fnmatchcase(tool, self.tool):
            return False
        if self.pattern is None:
            return True
        subject = subject_of(args)
        return subject is not None and fnmatchcase(subject, self.pattern)


@dataclass(frozen=True)
class Policy:
    mode: str = "ask"
    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()
    # repository-relative paths the file tools must not write (the user's uncommitted work)
    protected: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, mode: str, allow: list[str] = (), deny: list[str] = ()) -> Policy:
        return cls(mode, tuple(map(Rule.parse, allow)), tuple(map(Rule.parse, deny)))


def subject_of(args: dict[str, Any]) -> str | None:
    """The command or path a call acts on, as one string (a command list is joined)."""
    for key in _SUBJECT_KEYS:
        value = args.get(key)
        if isinstance(value, list):
            return " ".join(map(str, value))
        if isinstance(value, str):
            return value
    return None


def decide(policy: Policy, tool: str, effect: str, args: dict[str, Any]) -> Decision:
    """allow, ask or deny for one tool call. Deny rules beat allow rules beat the mode."""
    if any(rule.matches(tool, args) for rule in policy.deny):
        return "deny"
    if any(rule.matches(tool, args) for rule in policy.allow):
        return "allow"
    if policy.mode not in _MODES:
        raise ValueError(f"unknown approval mode {policy.mode!r}; use one of {', '.join(_MODES)}")
    return _MODES[policy.mode].get(effect, "ask")


def allow_always(policy: Policy, tool: str, args: dict[str, Any] | None = None) -> Policy:
    """The policy after the user answers "always" for this tool (and command, if any)."""
    subject = subject_of(args or {})
    pattern = None if subject is None or tool not in ("shell",) else subject
    return replace(policy, allow=(*policy.allow, Rule(tool, pattern)))
