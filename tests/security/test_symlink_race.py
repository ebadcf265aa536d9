"""A directory swapped for a symlink between a tool's path check and its open never leads the
tool outside the repository: another process flips `sub/` between the real directory and a
link to an outside directory holding a canary, while `read`, `edit`, `apply_patch` and
`search` run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.base import ToolContext, ToolError, call

CANARY = "CANARY outside the repository"
SWAPPER = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
sub, spare, stop = (os.fsencode(a) for a in sys.argv[1:4])
end = time.monotonic() + float(stop)
while time.monotonic() < end:  # sub is the directory, then the link, never missing
    libc.renameat2(AT_FDCWD, sub, AT_FDCWD, spare, RENAME_EXCHANGE)
"""

def _outside(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "f.txt").write_text(f"a\nb\n{CANARY}\n")
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


def _swapping(repo: Path, out: Path, seconds: float) -> subprocess.Popen:
    """Another process exchanging `sub/` and a link to `out` (atomically, renameat2)."""
    spare = out.parent / "spare"
    spare.symlink_to(out)
    return subprocess.Popen([sys.executable, "-c", SWAPPER, str(repo / "sub"), str(spare),
                             str(seconds)])


def _each_call(ctx: ToolContext, i: int) -> str:
    """One tool call on sub/f.txt (whose text flips between 'a' and 'b'); what it returned."""
    kind = i % 6
    if kind >= 4:
        found = call("search", {"pattern": "CANARY|a|b", "path": "sub",
                                "engine": "python" if kind == 4 else "auto"}, ctx)
        return "\n".join(m.text for m in found.matches)
    if kind == 0:
        return call("read", {"path": "sub/f.txt"}, ctx).content
    if kind == 1:
        old, new = ("a\n", "b\n") if i % 8 == 1 else ("b\n", "a\n")
        return call("edit", {"path": "sub/f.txt", "old": old, "new": new}, ctx).diff
    if kind == 2:
        return call("apply_patch", {"patch": "*** Begin Patch\n*** Add File: sub/new.txt\n"
                                             f"+{i}\n*** End Patch"}, ctx).diff
    patch = "*** Begin Patch\n*** Update File: sub/f.txt\n@@\n-a\n+b\n*** End Patch"
    if i % 8 == 7:
        patch = patch.replace("-a\n+b", "-b\n+a")
    return call("apply_patch", {"patch": patch}, ctx).diff


@pytest.mark.parametrize("seconds", [3.0])
def test_a_swapped_directory_never_leads_outside(git_repo, tmp_path, seconds):
    out, before = _outside(tmp_path)
    (git_repo / "sub").mkdir()
    (git_repo / "sub" / "f.txt").write_text("a\n")
    swapper = _swapping(git_repo, out, seconds)
    ctx, calls, refused, leaks, crashes = ToolContext(git_repo), 0, 0, [], set()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ctx.read_stamps.clear()  # staleness is not under test here
            try:
                text = _each_call(ctx, calls)
                if CANARY in text:
                    leaks.append(text)
            except ToolError:
                refused += 1
            except Exception as exc:  # noqa: BLE001 - every other exception is a failure
                crashes.add(f"{type(exc).__name__}: {exc}"[:120])
            calls += 1
    finally:
        swapper.wait(timeout=seconds + 10)
    assert calls > 500, f"only {calls} calls ran"
    changed = {p.name for p in out.iterdir()} ^ set(before)
    assert (len(leaks), sorted(crashes)[:3], len(changed)) == (0, [], 0), (
        f"of {calls} calls: {len(leaks)} saw the outside file, {len(crashes)} kinds of crash, "
        f"{len(changed)} files appeared outside")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
