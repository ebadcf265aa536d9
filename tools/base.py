"""What every tool shares: the context it runs in, path confinement, typed errors, the registry.

A tool is a plain function `fn(ctx, args) -> result` where `args` and `result` are pydantic
models. It never asks the user anything: it returns a result or raises `ToolError`, whose text
tells the model what went wrong and how to do better. Tool descriptions for the model live in
prompts/tools/NAME.md.j2; the input model's JSON schema gives the parameters.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

Effect = Literal["read", "write", "exec"]  # approvals and checkpoints key off this


class ToolError(Exception):
    """The tool could not do what was asked. The message is written for the model to act on."""


class PathOutsideRepoError(ToolError):
    """A path points outside the repository (`..`, an absolute path, a symlink leading out)."""


class GitDirError(ToolError):
    """A path is, or lies inside, a git directory: `.git` in any spelling, at any depth."""


NAME_MAX, PATH_MAX = 255, 4096  # bytes, as Linux and macOS count them
# the most a command's output file keeps (its head and tail); ToolContext.spill_cap_bytes
SPILL_CAP_BYTES = 16 * 2**20
# Names git itself refuses to check out because some filesystem reads them as ".git": any
# case (macOS, Windows), NTFS's short name, trailing dots and spaces (Windows drops them),
# and code points HFS+ ignores. Refused everywhere: on other filesystems it costs nothing.
_GIT_NAMES = {".git", "git~1"}
_HFS_IGNORED = dict.fromkeys(map(ord, "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d"
                                      "\u202e\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"))


def is_git_name(name: str) -> bool:
    """Whether a file system could take this path component for a `.git` directory."""
    return name.translate(_HFS_IGNORED).rstrip(". ").lower() in _GIT_NAMES


def _shown(path: str | os.PathLike[str]) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}…{text[-30:]}"


def check_name(path: str | os.PathLike[str]) -> None:
    """ToolError for a path no file system can hold: a NUL byte, characters that cannot be
    encoded, a component over NAME_MAX bytes or the whole over PATH_MAX."""
    text = os.fspath(path)
    if "\0" in text:
        raise ToolError(f"'{_shown(repr(text)[1:-1])}' contains a NUL byte, which no file name "
                        "can hold. Give the path without it.")
    try:
        data = os.fsencode(text)
    except UnicodeEncodeError:
        raise ToolError(f"{_shown(ascii(text))} is not a valid file name (it has characters that "
                        "cannot be encoded, such as lone surrogates).") from None
    longest = max(data.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise ToolError(f"A file name in '{_shown(text)}' is too long ({len(longest)} bytes; "
                        f"the limit is {NAME_MAX}). Use a shorter name.")
    if len(data) >= PATH_MAX:
        raise ToolError(f"'{_shown(text)}' is too long ({len(data)} bytes; paths are limited to "
                        f"{PATH_MAX - 1}). Use a shorter path.")


@dataclass
class ToolContext:
    """Where a tool runs. One per agent session; tools may keep per-session state in it."""

    root: Path  # the repository root: every path a tool touches must resolve inside it
    # where long outputs are written in full (default: root/.flashcode/spill, git-excluded)
    spill_dir: Path | None = None
    sandbox: Literal["auto", "on", "off"] = "auto"
    # path (relative to root) -> (mtime_ns, size) when the agent last read it; `edit` refuses a
    # file that changed since, so the model never edits text it has not seen.
    read_stamps: dict[str, tuple[int, int]] = field(default_factory=dict)
    # set from another thread (the TUI's Ctrl-C) to stop a running tool; long-running tools
    # poll it and raise KeyboardInterrupt after cleaning up.
    cancel: threading.Event = field(default_factory=threading.Event)
    # a command's output file keeps at most this many bytes (head and tail; the middle is
    # dropped and counted), so a command printing without end cannot fill the disk
    spill_cap_bytes: int = SPILL_CAP_BYTES

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if self.spill_dir is None:
            self.spill_dir = self.root / ".flashcode" / "spill"

    def resolve(self, path: str | os.PathLike[str], must_exist: bool = False,
                follow: bool = True, check_parents: bool = True) -> Path:
        """Absolute, symlink-resolved path inside the repository and outside any git
        directory; else PathOutsideRepoError, GitDirError or (a name no file system can hold,
        a file where a directory must be) ToolError.

        With follow=False a symlink at the last component is not followed: the result is the
        link itself (its directories resolved), for tools that delete, move or replace it. A
        link leading outside the repository or into a git directory is refused either way.
        check_parents=False leaves a file above the path to the caller (apply_patch checks
        against the tree it plans, where that file may be deleted first)."""
        check_name(path)
        raw = Path(path)
        candidate = raw if raw.is_absolute() else self.root / raw
        check_name(candidate)
        try:
            resolved = candidate.resolve()  # follows symlinks, so a link pointing out is caught
            self._confine(resolved, path)
            if not follow and candidate.name != "..":
                resolved = candidate.parent.resolve() / candidate.name
                self._confine(resolved, path)
        except (OSError, RuntimeError) as exc:  # a link loop, or a link changing under us
            raise ToolError(f"'{_shown(path)}' cannot be resolved ({exc.__class__.__name__}: "
                            f"{exc}). Check the path, then try again.") from None
        if check_parents:
            self._under_a_file(resolved, path)
        if must_exist and not os.path.lexists(resolved):
            raise ToolError(
                f"'{path}' does not exist. Use `list` or `glob` to find the right path."
            )
        return resolved

    def _confine(self, resolved: Path, path: str | os.PathLike[str]) -> None:
        if resolved != self.root and self.root not in resolved.parents:
            raise PathOutsideRepoError(
                f"'{_shown(path)}' is outside the repository {self.root}. Use a path relative to "
                "the repository root (no '..' leading out, no absolute paths elsewhere, no "
                "symlinks pointing outside)."
            )
        if any(is_git_name(part) for part in resolved.relative_to(self.root).parts):
            raise GitDirError(
                f"'{_shown(path)}' is in a git directory, which belongs to flashcode and git: no "
                "tool reads or writes it. Use the `git` tool to look at history and status, and "
                "`git_change` to commit, branch or add a worktree."
            )

    def _under_a_file(self, resolved: Path, path: str | os.PathLike[str]) -> None:
        """ToolError when the nearest existing directory above `resolved` is a file."""
        above = resolved.parent
        while above != self.root and not os.path.lexists(above):
            above = above.parent
        if not above.is_dir():
            raise ToolError(f"'{self.rel(above)}' is a file, so '{_shown(path)}' cannot be "
                            "inside it. Pick a path whose directories are directories.")

    def rel(self, path: Path, follow: bool = True) -> str:
        """The repository-relative form of an absolute path, with forward slashes; with
        follow=False a symlink at the last component names the link, not its target."""
        try:
            real = path.resolve() if follow else path.parent.resolve() / path.name
        except (OSError, RuntimeError):  # a link loop, or a link changing as we look
            real = None
        if real is None or (real != self.root and self.root not in real.parents):
            raise PathOutsideRepoError(f"'{_shown(path)}' now leads outside the repository or "
                                       "nowhere (it changed while the tool ran). Try again.")
        return real.relative_to(self.root).as_posix() or "."


def named_paths(args: BaseModel) -> list[str]:
    """The paths a call names in its `path` or `file` argument (the default `Tool.paths`)."""
    return [v for k in ("path", "file") if isinstance(v := getattr(args, k, None), str)]


@dataclass(frozen=True)
class Tool:
    name: str
    input: type[BaseModel]
    fn: Callable[[ToolContext, Any], BaseModel]
    effect: Effect
    # the repository paths a call (its validated arguments) may change or read, as the model
    # wrote them; "." for the whole tree. Approvals, protected paths and checkpoint labels
    # use this instead of knowing each tool's arguments.
    paths: Callable[[Any], list[str]] = named_paths
    # what a write would change, as a unified diff, without changing anything (shown when
    # the user is asked to approve it); a ToolError when the call cannot succeed
    preview: Callable[[ToolContext, Any], str] | None = None


REGISTRY: dict[str, Tool] = {}

# Modules that define tools; importing one registers its tools. Filled as tools land.
# Each tool and the module that defines it; importing a module registers its tools. A tool is
# looked up by importing its own module only, so running one tool loads nothing else.
TOOL_MODULES: dict[str, str] = {
    "read": "tools.files", "list": "tools.files", "glob": "tools.files",
    "search": "tools.search", "edit": "tools.edit", "apply_patch": "tools.patch",
    "shell": "tools.shell", "git": "tools.git", "git_change": "tools.git",
    "tests": "tools.tests", "repomap": "tools.repomap.tool",
}


def register(name: str, input: type[BaseModel], effect: Effect,
             paths: Callable[[Any], list[str]] = named_paths,
             preview: Callable[[ToolContext, Any], str] | None = None):
    """Decorator: `@register("read", ReadArgs, "read")` on `def read(ctx, args) -> ReadResult`;
    `paths(args)` when the tool touches other paths than its `path`/`file` argument."""

    def wrap(fn: Callable[[ToolContext, Any], BaseModel]):
        REGISTRY[name] = Tool(name, input, fn, effect, paths, preview)
        return fn

    return wrap


def all_tools() -> dict[str, Tool]:
    for module in dict.fromkeys(TOOL_MODULES.values()):
        importlib.import_module(module)
    return dict(REGISTRY)


def get(name: str) -> Tool:
    """The registered tool called `name`, or a ToolError listing the ones there are."""
    if name not in REGISTRY and name in TOOL_MODULES:
        importlib.import_module(TOOL_MODULES[name])
    if name in REGISTRY:
        return REGISTRY[name]
    tools = all_tools()
    raise ToolError(f"There is no tool named '{name}'. Available: {', '.join(sorted(tools))}.")


def validate(tool: Tool, args: dict[str, Any]) -> BaseModel:
    """`args` as the tool's input model, or a ToolError naming each bad field."""
    try:
        return tool.input.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ToolError(f"Bad arguments for '{tool.name}': {problems}.") from None


def call(name: str, args: dict[str, Any], ctx: ToolContext) -> BaseModel:
    """Validate `args` against the tool's input model and run it. Errors are ToolErrors."""
    tool = get(name)
    return tool.fn(ctx, validate(tool, args))
