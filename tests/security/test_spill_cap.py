"""A shell command's output file is capped: a command printing without end (`yes`) leaves a
spill file no bigger than the cap, holding the head and the tail, and says what was dropped."""

from __future__ import annotations

import re

from tools.base import ToolContext, call

DEFAULT_CAP = 16 * 2**20


def test_yes_for_three_seconds_stays_under_the_default_cap(git_repo):
    ctx = ToolContext(git_repo, sandbox="off")
    r = call("shell", {"command": "echo FIRST; timeout 3 yes; echo LAST"}, ctx)
    spilled = git_repo / r.spill_path
    size = spilled.stat().st_size
    assert size <= DEFAULT_CAP, f"the spill file is {size / 2**20:.0f} MiB"
    with spilled.open("rb") as f:
        head = f.read(64)
        f.seek(size - 64)
        tail = f.read()
    assert head.startswith(b"FIRST\ny\ny\n") and tail.endswith(b"y\ny\nLAST\n")
    dropped = re.search(r"(\d+) bytes of output were dropped", r.output)
    assert dropped and int(dropped.group(1)) > 0, r.output[-300:]


def test_a_configured_cap_keeps_head_and_tail_and_counts_the_rest(git_repo):
    cap = 2**20
    ctx = ToolContext(git_repo, sandbox="off", spill_cap_bytes=cap)
    r = call("shell", {"command": "seq 1 2000000"}, ctx)
    whole = "".join(f"{i}\n" for i in range(1, 2000001)).encode()
    spilled = (git_repo / r.spill_path).read_bytes()
    assert len(spilled) <= cap
    marker = re.search(rb"\n\[\.\.\. (\d+) bytes dropped \.\.\.\]\n", spilled)
    assert marker, spilled[cap // 2 - 100:cap // 2 + 100]
    head, tail = spilled[:marker.start()], spilled[marker.end():]
    assert whole.startswith(head) and whole.endswith(tail)
    assert int(marker.group(1)) == len(whole) - len(head) - len(tail)
    assert f"{int(marker.group(1))} bytes of output were dropped" in r.output
    assert r.output.startswith("1\n2\n3\n") and r.output.rstrip().endswith(r.spill_path + "]")


def test_short_output_is_untouched(git_repo):
    r = call("shell", {"command": "seq 1 5"}, ToolContext(git_repo, sandbox="off"))
    assert r.output == "1\n2\n3\n4\n5\n" and r.spill_path is None
