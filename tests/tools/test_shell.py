"""shell: exit codes, confinement, timeouts that kill whole groups, long output, the sandbox."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tools import sandbox
from tools.base import PathOutsideRepoError, ToolContext, ToolError, call

HAS_BWRAP = sandbox.bwrap_problem() is None


@pytest.fixture
def ctx(git_repo):
    return ToolContext(git_repo, sandbox="off")


def test_runs_in_repo_with_exit_code(ctx, git_repo):
    (git_repo / "sub").mkdir()
    r = call("shell", {"command": "pwd; echo err >&2; exit 3", "cwd": "sub"}, ctx)
    assert r.exit_code == 3 and not r.timed_out and not r.truncated
    assert r.output == f"{git_repo.resolve()}/sub\nerr\n"
    assert r.sandbox == "none" and "requested" in r.sandbox_note
    assert list((git_repo / ".flashcode" / "spill").iterdir()) == []  # short output: no file


@pytest.mark.parametrize("cwd", ["..", "/tmp"])
def test_cwd_outside_is_refused(ctx, cwd):
    with pytest.raises(PathOutsideRepoError):
        call("shell", {"command": "true", "cwd": cwd}, ctx)


def test_missing_cwd(ctx):
    with pytest.raises(ToolError, match="does not exist"):
        call("shell", {"command": "true", "cwd": "nope"}, ctx)


def _alive(token: str) -> bool:
    """Whether a live (not zombie) process has `token` in its command line: found from
    outside, since inside the sandbox's PID namespace `$!` means another process."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            return True
    return False


@pytest.mark.parametrize("mode", ["off"] + (["on"] if HAS_BWRAP else []))
def test_timeout_kills_a_group_that_ignores_sigterm(ctx, git_repo, mode):
    token = f"60.{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
    cmd = (f"trap '' TERM; (trap '' TERM; sleep {token}) & echo started; "
           "while true; do sleep 0.1; done")
    t0 = time.monotonic()
    r = call("shell", {"command": cmd, "timeout_s": 1}, ToolContext(git_repo, sandbox=mode))
    elapsed = time.monotonic() - t0
    assert r.timed_out and r.exit_code is None and "started" in r.output
    assert "killed after 1 s timeout" in r.output
    assert elapsed < 1 + 2 + 3  # timeout + SIGKILL grace + slack
    deadline = time.monotonic() + 2
    while _alive(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(token)


def test_huge_output_keeps_head_and_tail_and_spills(ctx, git_repo):
    r = call("shell", {"command": "seq 1 200000", "max_output": 1000}, ctx)
    assert r.truncated and r.output.startswith("1\n2\n3\n")
    assert "200000\n" in r.output and "bytes omitted" in r.output and len(r.output) < 1200
    spilled = git_repo / r.spill_path
    assert spilled.read_text() == "".join(f"{i}\n" for i in range(1, 200001))
    status = subprocess.run(["git", "status", "--porcelain"], cwd=git_repo,
                            capture_output=True, text=True).stdout
    assert ".flashcode" not in status


def test_sandbox_on_without_bwrap_is_refused(ctx, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(ToolError, match="sandbox was required"):
        call("shell", {"command": "true"}, ToolContext(ctx.root, sandbox="on"))
    r = call("shell", {"command": "true"}, ToolContext(ctx.root, sandbox="auto"))
    assert r.sandbox == "none" and "not installed" in r.sandbox_note


@pytest.fixture
def http_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


FETCH = "python3 -c \"import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=3)\" "


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap not usable here")
def test_bubblewrap_sandbox(ctx, git_repo, tmp_path, http_server):
    outside = tmp_path / "outside.txt"
    cmd = (f"echo ok > inside.txt; echo bad > {outside}; touch /usr/flashcode-x 2>/dev/null "
           f"|| echo ro; {FETCH}{http_server} && echo net-on || echo net-off")
    r = call("shell", {"command": cmd}, ToolContext(git_repo, sandbox="on"))
    assert r.sandbox == "bubblewrap" and "network off" in r.sandbox_note
    assert (git_repo / "inside.txt").read_text() == "ok\n"
    assert not outside.exists() and not os.path.exists("/usr/flashcode-x")
    assert "ro\n" in r.output and "net-off" in r.output
    plain = call("shell", {"command": f"{FETCH}{http_server} && echo net-on"}, ctx)
    assert "net-on" in plain.output and plain.sandbox == "none"


def test_cancel_from_another_thread_kills_the_command(git_repo):
    ctx = ToolContext(git_repo, sandbox="off")
    timer = threading.Timer(0.5, ctx.cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        call("shell", {"command": "sleep 30"}, ctx)
    assert time.monotonic() - started < 10


def test_sandbox_keeps_a_python_environment_under_tmp_visible(monkeypatch, tmp_path):
    """CI may run from a clone under /tmp: the private /tmp must not hide its virtualenv."""
    monkeypatch.setattr(sandbox.sys, "prefix", "/tmp/ci/main/.venv")
    argv = sandbox.wrap(["true"], sandbox.Mode("bubblewrap", ""), tmp_path, tmp_path)
    at = argv.index("--tmpfs")
    assert argv[at + 2:at + 5] == ["--ro-bind", "/tmp/ci/main/.venv", "/tmp/ci/main/.venv"]


def test_git_dirs_are_bound_read_only_after_the_writable_repository(git_repo, tmp_path):
    """Checked without bubblewrap: the order of the binds is what makes .git read-only."""
    import subprocess

    wt = tmp_path / "wt"
    subprocess.run(["git", "worktree", "add", "-q", "-b", "w", str(wt)], cwd=git_repo, check=True)
    for root, ro in [(git_repo, [git_repo / ".git"]), (wt, [wt / ".git", git_repo / ".git"])]:
        argv = sandbox.wrap(["true"], sandbox.Mode("bubblewrap", ""), root, root)
        writable = argv.index("--bind", argv.index("--tmpfs"))
        assert argv[writable + 1] == str(root)
        for d in ro:
            at = argv.index(str(d.resolve()))
            assert argv[at - 1] == "--ro-bind" and at > writable + 2


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap not usable here")
def test_a_linked_worktree_works_inside_the_sandbox_but_cannot_commit(git_repo, tmp_path):
    """In a linked worktree (as `propose` uses) the sandbox can read history and write the
    work tree, but not the git dirs: commits go through flashcode's git_change tool."""
    import subprocess

    (git_repo / "a.txt").write_text("a\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "a"], cwd=git_repo, check=True)
    wt = tmp_path / "wt"
    subprocess.run(["git", "worktree", "add", "-q", str(wt)], cwd=git_repo, check=True)
    ctx = ToolContext(wt, sandbox="on")
    r = call("shell", {"command": "echo b > b.txt && git log --format=%s -1 && "
                                  "git status --porcelain"}, ctx)
    assert r.exit_code == 0 and r.output.splitlines() == ["a", "?? b.txt"], r.output
    r = call("shell", {"command": "git add b.txt && git commit -qm b"}, ctx)
    assert r.exit_code != 0 and "Read-only file system" in r.output
    assert not (git_repo / "b.txt").exists()  # the main working tree stays read-only
    call("shell", {"command": f"echo x > {git_repo}/c.txt"}, ctx)
    assert not (git_repo / "c.txt").exists()  # (under /tmp it lands in the private tmpfs)
