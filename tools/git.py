"""`git`: look at history and make safe changes through GitPython.

Read: status, diff, log, show, blame, branch (list), worktree (list). Write: commit (of the
paths named, or of every tracked change), branch create, worktree add. Nothing here can lose the
user's work: no reset, checkout of files, force, clean, stash, amend or branch deletion.
GitPython is imported inside the functions: importing it runs `git version`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools import gitcmd
from tools.base import ToolContext, ToolError, register
from tools.state import private_dir

ReadOp = Literal["status", "diff", "log", "show", "blame", "branch", "worktree"]
ChangeOp = Literal["commit", "branch", "worktree"]


class GitArgs(BaseModel):
    op: ReadOp = Field(description="branch and worktree list them here")
    paths: list[str] = Field(default_factory=list, description="limit to these paths "
                             "(diff, log, blame: one path; commit: what to commit)")
    rev: str | None = Field(None, description="revision: diff against it, log from it, show it")
    staged: bool = Field(False, description="diff: the staged changes instead of the worktree")
    n: int = Field(20, ge=1, le=1000, description="log: most commits")
    lines: list[int] | None = Field(None, min_length=2, max_length=2,
                                    description="blame: [first line, last line]")
    message: str | None = Field(None, description="commit: the message")
    all_tracked: bool = Field(False, description="commit: include every change to tracked files")
    name: str | None = Field(None, description="branch/worktree: the new branch to create")
    start_point: str | None = Field(None, description="branch/worktree: where the branch starts")
    max_output: int = Field(50_000, ge=1000, le=1_000_000)


class GitChangeArgs(GitArgs):
    op: ChangeOp = Field(description="commit, or create a branch / a worktree on a new branch")


class GitResult(BaseModel):
    op: str
    output: str  # git's text, capped at max_output
    data: Any = None  # structured form where it helps: status entries, log commits, new sha
    truncated: bool = False


def _repo(ctx: ToolContext):
    import git

    try:
        return git.Repo(ctx.root, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ToolError(f"{ctx.root} is not a git repository.") from None


def _safe_rev(rev: str | None) -> list[str]:
    if rev is None:
        return []
    if rev.startswith("-") or not rev.strip():
        raise ToolError(f"'{rev}' is not a revision (it must not start with '-').")
    return [rev]


def _paths(ctx: ToolContext, paths: list[str]) -> list[str]:
    return [ctx.rel(ctx.resolve(p)) for p in paths]


def _run(repo, *args: str) -> str:
    import git

    try:
        return repo.git.execute(gitcmd.argv(Path(repo.working_dir), *args),
                                strip_newline_in_stdout=False, env=gitcmd.safe_env())
    except git.GitCommandError as exc:
        raise ToolError(f"git {args[0]} failed: {exc.stderr.strip() or exc}") from None


def _status(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    out = _run(repo, "status", "--porcelain=v1", "--branch", "--untracked-files=all")
    entries = [{"xy": line[:2], "path": line[3:]} for line in out.splitlines()
               if not line.startswith("##")]
    return out, {"branch": out.splitlines()[0][3:] if out else "", "entries": entries}


def _diff(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    flags = ["--cached"] if args.staged else []
    return _run(repo, "diff", "--no-ext-diff", "--no-textconv", *flags, *_safe_rev(args.rev),
                "--", *_paths(ctx, args.paths)), None


def _log(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    fmt = "%H%x1f%an%x1f%aI%x1f%s"
    out = _run(repo, "log", f"-n{args.n}", f"--format={fmt}", *_safe_rev(args.rev), "--",
               *_paths(ctx, args.paths))
    commits = [dict(zip(("sha", "author", "date", "subject"), line.split("\x1f"), strict=False))
               for line in out.splitlines()]
    text = "\n".join(f"{c['sha'][:10]} {c['date'][:10]} {c['author']}: {c['subject']}"
                     for c in commits)
    return text, commits


def _show(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    rev = (_safe_rev(args.rev) or ["HEAD"])[0]
    if args.paths:
        return _run(repo, "show", "--no-textconv", f"{rev}:{_paths(ctx, args.paths[:1])[0]}"), None
    return _run(repo, "show", "--no-ext-diff", "--no-textconv", "--stat", "--patch", rev), None


def _blame(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    if len(args.paths) != 1:
        raise ToolError("blame needs exactly one path in `paths`.")
    span = ["-L", f"{args.lines[0]},{args.lines[1]}"] if args.lines else []
    return _run(repo, "blame", *span, *_safe_rev(args.rev), "--",
                _paths(ctx, args.paths)[0]), None


def _branch(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    if args.name is None:
        return _run(repo, "branch", "--list", "-vv"), None
    _check_new_branch(repo, args.name)
    _run(repo, "branch", args.name, *_safe_rev(args.start_point))
    return f"created branch {args.name}", {"branch": args.name}


def _check_new_branch(repo, name: str) -> None:
    if name.startswith("-") or name in {b.name for b in repo.branches}:
        raise ToolError(f"Branch '{name}' already exists or is not a valid name; pick a new "
                        "name (existing branches are never overwritten).")


def _worktree(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    if args.name is None:
        return _run(repo, "worktree", "list"), None
    _check_new_branch(repo, args.name)
    if args.paths:
        where = ctx.resolve(args.paths[0])
    else:
        where = ctx.resolve(private_dir(ctx.root, "worktrees") / args.name)
    if where.exists():
        raise ToolError(f"'{ctx.rel(where)}' already exists; choose another worktree path.")
    _run(repo, "worktree", "add", "-b", args.name, str(where), *_safe_rev(args.start_point))
    return f"created worktree {ctx.rel(where)} on new branch {args.name}", {
        "path": ctx.rel(where), "branch": args.name}


def _commit(ctx, repo, args: GitArgs) -> tuple[str, Any]:
    if not args.message or not args.message.strip():
        raise ToolError("commit needs a `message`.")
    if not args.paths and not args.all_tracked:
        raise ToolError("Say what to commit: `paths`, or all_tracked=true for every change to "
                        "tracked files.")
    if args.paths:
        _run(repo, "add", "--", *_paths(ctx, args.paths))
    if args.all_tracked:
        _run(repo, "add", "--update")
    if not _run(repo, "diff", "--cached", "--name-only").strip():
        raise ToolError("Nothing to commit: the named paths have no changes.")
    _run(repo, "commit", "-q", "-m", args.message)
    sha = repo.head.commit.hexsha
    return _run(repo, "show", "--stat", "--format=%H %s", "HEAD"), {"sha": sha}


_OPS = {"status": _status, "diff": _diff, "log": _log, "show": _show, "blame": _blame,
        "branch": _branch, "worktree": _worktree, "commit": _commit}


@register("git", GitArgs, "read")
def git_tool(ctx: ToolContext, args: GitArgs) -> GitResult:
    """Read-only: `branch` and `worktree` only list here, whatever `name` says."""
    return _result(args, *_OPS[args.op](ctx, _repo(ctx), args.model_copy(update={"name": None})))


def _change_paths(args: GitChangeArgs) -> list[str]:
    """A commit may take anything already staged along: it touches the whole tree."""
    return ["."] if args.op == "commit" else []


@register("git_change", GitChangeArgs, "write", paths=_change_paths)
def git_change(ctx: ToolContext, args: GitChangeArgs) -> GitResult:
    if args.op != "commit" and not args.name:
        raise ToolError(f"{args.op} needs `name`: the new branch to create.")
    return _result(args, *_OPS[args.op](ctx, _repo(ctx), args))


def _result(args: GitArgs, text: str, data: Any) -> GitResult:
    truncated = len(text) > args.max_output
    if truncated:
        text = text[:args.max_output] + f"\n[… {len(text) - args.max_output} characters cut]"
    return GitResult(op=args.op, output=text, data=data, truncated=truncated)
