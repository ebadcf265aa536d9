"""`flashcode proposals` and `flashcode review`: list, inspect, discard and apply proposals."""

from __future__ import annotations

import sys
from pathlib import Path

from agent import exitcodes, hunks, proposals
from agent.cli.args import cwd_of
from agent.hunks import HunkError
from agent.proposals import ProposalError


def run(args) -> int:
    """`flashcode review`."""
    return run_review(cwd_of(args), args.branch, args.accept, args.show)


def proposals_command(args) -> int:
    """`flashcode proposals`."""
    return run_proposals(cwd_of(args), args.discard)


def run_proposals(repo: Path, discard: str | None) -> int:
    try:
        if discard:
            p = proposals.load(repo, discard)
            proposals.discard(repo, p)
            print(f"Discarded {p.branch}: its worktree, branch and patch file are gone.")
            return exitcodes.OK
        items = proposals.list_all(repo)
        if not items:
            print("No proposals. Make one with: flashcode propose \"TASK\"")
        for p in items:
            print(f"{p.branch}\n    task: {p.task}\n    patch: {p.patch or '(unfinished)'}")
        return exitcodes.OK
    except ProposalError as exc:
        print(f"flashcode proposals: {exc}", file=sys.stderr)
        return exitcodes.NOT_FIXED


def _numbered(files: list[hunks.FileDiff]) -> list[tuple[int, int, str]]:
    """(file index, hunk index, one-line description) for every reviewable unit."""
    out = []
    for fi, f in enumerate(files):
        if f.is_binary_or_meta:
            out.append((fi, 0, f"{f.path} (whole file: {' '.join(f.head[1:2]) or 'metadata'})"))
        for hi, h in enumerate(f.hunks):
            where = h.header.split(" @@")[0]
            out.append((fi, hi, f"{f.path} {where} @@ (+{h.added} -{h.removed})"))
    return out


def _parse_accept(spec: str, count: int) -> set[int]:
    if spec == "all":
        return set(range(1, count + 1))
    if spec == "none":
        return set()
    chosen = {int(x) for x in spec.replace(" ", "").split(",") if x}
    bad = [x for x in chosen if not 1 <= x <= count]
    if bad:
        raise ProposalError(f"--accept: hunk number(s) {bad} out of range 1..{count}")
    return chosen


def _unit_text(f: hunks.FileDiff, hi: int) -> str:
    """The lines one numbered unit changes (a hunk, or a binary/metadata file's header)."""
    return f.hunks[hi].text() if f.hunks else "\n".join(f.head) + "\n"


def _ask(units, files) -> set[int]:
    chosen: set[int] = set()
    for n, (fi, hi, desc) in enumerate(units, 1):
        f = files[fi]
        print(f"\n[{n}/{len(units)}] {desc}")
        print(_unit_text(f, hi), end="")
        answer = input("apply this hunk? [y]es [n]o [a]ll remaining [q]uit: ").strip().lower()
        if answer.startswith("a"):
            return chosen | set(range(n, len(units) + 1))
        if answer.startswith("q"):
            return chosen
        if answer.startswith("y"):
            chosen.add(n)
    return chosen


def run_review(repo: Path, branch: str | None, accept: str | None, show: bool) -> int:
    try:
        items = proposals.list_all(repo)
        if branch is None and not items:
            raise ProposalError("No proposals to review. Make one with: flashcode propose \"TASK\"")
        p = proposals.load(repo, branch) if branch else items[0]
        files = hunks.parse(proposals.diff(repo, p))
        units = _numbered(files)
        print(f"{p.branch}: {p.task}\n{p.summary}".rstrip())
        if show or (accept is None and not sys.stdin.isatty()):
            for n, (fi, hi, desc) in enumerate(units, 1):
                print(f"\n  {n}. {desc}")
                print(_unit_text(files[fi], hi), end="")
            if not show:
                print("Not a terminal: choose hunks with --accept 1,3 (or all / none).")
            return exitcodes.OK if show else exitcodes.USAGE
        chosen = _parse_accept(accept, len(units)) if accept else _ask(units, files)
        selected = {(units[n - 1][0], units[n - 1][1]) for n in chosen}
        hunks.apply(repo, hunks.select(files, selected))
        print(f"Applied {len(chosen)} of {len(units)} hunk(s) to the working tree "
              "(your index is unchanged; review with git diff).")
        return exitcodes.OK
    except (ProposalError, HunkError) as exc:
        print(f"flashcode review: {exc}", file=sys.stderr)
        return exitcodes.NOT_FIXED
