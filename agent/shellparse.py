"""A shell command line as the simple commands it runs, for approval rules.

`true && rm x`, `git status; anything`, `a | b` and lines of a script are several commands, and
a rule must see each of them: a deny rule matches when it matches any one, an allow rule only
when every one is allowed. What cannot be read for sure is `opaque`: command substitution
(`$(…)`, backticks, `<(…)`), an unterminated quote, output redirected to a file. An opaque
command line is never allowed by a pattern rule; deny rules still look at everything that can
be read, including the text inside substitutions and `bash -c '…'`.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

_OPERATORS = {";", "&", "&&", "|", "||", "|&", "\n", "(", ")", ";;"}
_WRAPPERS = {"env", "command", "exec", "nohup", "time", "sudo", "nice", "builtin", "xargs"}
_SHELLS = {"bash", "sh", "zsh", "dash", "eval"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HARMLESS_TARGETS = {"/dev/null"}


@dataclass(frozen=True)
class Parsed:
    commands: tuple[str, ...]  # each simple command, words joined by single spaces
    opaque: bool  # something could not be read for sure: never allowed by a pattern
    hidden: tuple[str, ...] = ()  # commands found inside substitutions and `sh -c` strings


def parse(text: str) -> Parsed:
    try:
        words = _words(text)
    except ValueError:  # an unterminated quote or escape
        return Parsed((" ".join(text.split()),), True)
    commands, redirects = _split(words)
    inner = _substitutions(text) + [w for c in commands for w in _shell_strings(c)]
    hidden = tuple(cmd for part in inner for cmd in _all(parse(part)))
    return Parsed(tuple(" ".join(c) for c in commands if c), redirects or _has_subst(text),
                  hidden)


def deny_subjects(text: str) -> list[str]:
    """Every reading of the command line a deny rule should be tried on: each simple command,
    without its variable assignments and wrappers (`env`, `sudo`, ...), with its program's
    basename, and the commands hidden in substitutions and `sh -c` strings."""
    out = []
    for command in _all(parse(text)):
        words = command.split(" ")
        out.append(command)
        while words and (_ASSIGNMENT.match(words[0]) or words[0] in _WRAPPERS):
            words = words[1:]
        if words:
            out.append(" ".join(words))
            out.append(" ".join([os.path.basename(words[0]), *words[1:]]))
    return list(dict.fromkeys(out))


def _all(p: Parsed) -> list[str]:
    return [*p.commands, *p.hidden]


def _words(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>\n")
    lex.whitespace = " \t\r"
    lex.whitespace_split = True
    lex.commenters = ""
    return list(lex)


def _split(words: list[str]) -> tuple[list[list[str]], bool]:
    """Simple commands (redirections dropped) and whether output goes to a file."""
    commands: list[list[str]] = [[]]
    redirects, i = False, 0
    while i < len(words):
        w = words[i]
        if w in _OPERATORS:
            commands.append([])
        elif set(w) <= set("<>&") and ">" in w:  # >, >>, >&, &>, 2> (the 2 was its own word)
            target = words[i + 1] if i + 1 < len(words) else ""
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()
            redirects |= w not in (">&",) and target not in _HARMLESS_TARGETS \
                and not target.isdigit()
            i += 1
        elif set(w) <= set("<"):
            i += 1  # an input redirection and its file
        else:
            commands[-1].append(w)
        i += 1
    return [c for c in commands if c], redirects


def _has_subst(text: str) -> bool:
    return bool(_substitutions(text)) or "`" in _unquoted(text) or "<(" in text or ">(" in text


def _unquoted(text: str) -> str:
    """`text` without what single quotes hold (inside them nothing is special)."""
    return re.sub(r"'[^']*'", "", text)


def _substitutions(text: str) -> list[str]:
    """The command texts inside `$(…)` and backticks outside single quotes (innermost
    nesting is read again by `parse`)."""
    plain = _unquoted(text)
    found, depth, start = [], 0, 0
    i = 0
    while i < len(plain):
        if plain.startswith("$(", i) or plain.startswith("<(", i) or plain.startswith(">(", i):
            if depth == 0:
                start = i + 2
            depth += 1
            i += 2
            continue
        if plain[i] == ")" and depth:
            depth -= 1
            if depth == 0:
                found.append(plain[start:i])
        i += 1
    found += re.findall(r"`([^`]*)`", plain)
    return found


def _shell_strings(words: list[str]) -> list[str]:
    """The script of `bash -c 'SCRIPT'` and `eval WORDS`."""
    name = os.path.basename(words[0]) if words else ""
    if name == "eval":
        return [" ".join(words[1:])]
    if name in _SHELLS and "-c" in words[1:-1]:
        return [words[words.index("-c") + 1]]
    return []
