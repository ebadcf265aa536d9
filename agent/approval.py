"""Approval policy as pure functions: the policy decides what needs asking; the front end asks.

Modes (by a tool's effect: read / write / exec):
    read-only  read → allow, write/exec → deny
    ask        read → allow, write/exec → ask
    auto-edit  read/write → allow, exec → ask
    full-auto  everything → allow
Rules override the mode, deny first: "shell" (every call of a tool), "shell(git status*)"
(shell commands matching a glob), "edit(src/*)" (file tools whose path matches).

Rules see what a call really does, not its raw text. A shell command line is split into its
simple commands (agent.shellparse): a deny rule matches when it matches any of them (or a
command hidden in `$(…)` or `sh -c`, or one without its `env`/`sudo` wrapper), an allow rule
only when every one is allowed, and never a line with substitutions or output to a file. A path
rule is tried on every path the call touches (`paths`: all of an apply_patch's files), each
normalized (`./a/../b` is `b`) and, where given, also as the file a link leads to: one denied
path denies the call, and all must be allowed. Answering "always" allows that exact command
line, not a glob of it. `protected` paths (a `fix` run's files with uncommitted user changes)
are refused to the file tools whatever the mode; see `agent.toolrun`.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from agent import shellparse

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
class Subjects:
    """What a call's rules are matched against."""

    allow: tuple[str, ...]  # each must be allowed (simple commands, or paths)
    deny: tuple[str, ...]  # any one denied denies the call (more readings than `allow`)
    exact: str | None = None  # the whole command line, for the rules "always" adds
    opaque: bool = False  # a command line not read for sure: no pattern allows it


@dataclass(frozen=True)
class Rule:
    tool: str  # glob over tool names
    pattern: str | None = None  # glob over the call's command or path; None matches any call
    exact: bool = False  # `pattern` is one whole command line, not a glob ("always")

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = _RULE_RE.match(text)
        if not m:
            raise ValueError(f"bad approval rule {text!r}: write TOOL or TOOL(GLOB), "
                             "e.g. shell(git status*)")
        return cls(m.group(1), m.group(2))

    def covers(self, subject: str) -> bool:
        return subject == self.pattern if self.exact else fnmatchcase(subject, self.pattern)


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
            return shlex.join(map(str, value))
        if isinstance(value, str):
            return value
    return None


def normalize_path(path: str) -> str:
    """`./src/../secret//x` → `secret/x`: how a path rule sees a path."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    return norm[2:] if norm.startswith("./") else norm


def subjects(args: dict[str, Any], paths: list[str] | None = None) -> Subjects:
    """What rules see of a call: its command line's simple commands, else every path it
    touches (`paths`, already normalized by the caller, else its path argument), else its
    main argument."""
    command = args.get("command", args.get("cmd"))
    if isinstance(command, list):
        command = shlex.join(map(str, command))
    if isinstance(command, str):
        parsed = shellparse.parse(command)
        return Subjects(parsed.commands, tuple(shellparse.deny_subjects(command)),
                        command.strip(), parsed.opaque)
    if paths is None:
        paths = [normalize_path(p) for k in ("path", "file") if isinstance(p := args.get(k), str)]
    if paths:
        return Subjects(tuple(paths), tuple(paths))
    subject = subject_of(args)
    return Subjects((subject,), (subject,)) if subject is not None else Subjects((), ())


def decide(policy: Policy, tool: str, effect: str, args: dict[str, Any],
           paths: list[str] | None = None) -> Decision:
    """allow, ask or deny for one tool call. Deny rules beat allow rules beat the mode."""
    seen = subjects(args, paths)
    if any(_denies(rule, tool, seen) for rule in policy.deny):
        return "deny"
    if _allowed(policy.allow, tool, seen):
        return "allow"
    if policy.mode not in _MODES:
        raise ValueError(f"unknown approval mode {policy.mode!r}; use one of {', '.join(_MODES)}")
    return _MODES[policy.mode].get(effect, "ask")


def _denies(rule: Rule, tool: str, seen: Subjects) -> bool:
    if not fnmatchcase(tool, rule.tool):
        return False
    if rule.pattern is None:
        return True
    return any(rule.covers(s) for s in (*seen.deny, *([seen.exact] if seen.exact else [])))


def _allowed(rules: tuple[Rule, ...], tool: str, seen: Subjects) -> bool:
    mine = [r for r in rules if fnmatchcase(tool, r.tool)]
    if any(r.pattern is None for r in mine):
        return True
    if seen.exact is not None and any(r.exact and r.covers(seen.exact) for r in mine):
        return True
    globs = [r for r in mine if not r.exact]
    if seen.opaque or not seen.allow or not globs:
        return False
    return all(any(r.covers(s) for r in globs) for s in seen.allow)


def allow_always(policy: Policy, tool: str, args: dict[str, Any] | None = None) -> Policy:
    """The policy after the user answers "always": for a shell command, that exact command
    line from now on; for any other tool, every call of it."""
    command = subjects(args or {}).exact
    rule = Rule(tool, command, exact=True) if command is not None else Rule(tool)
    return replace(policy, allow=(*policy.allow, rule))
