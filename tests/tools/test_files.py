"""read, list and glob on real temp git repos: ranges, caps, binary, encodings, ignores, escapes."""

from __future__ import annotations

import os

import pytest

from tools.base import PathOutsideRepoError, ToolContext, ToolError, call


@pytest.fixture
def ctx(git_repo):
    return ToolContext(git_repo)


def test_read_numbers_lines_and_records_the_stamp(ctx, git_repo):
    (git_repo / "a.py").write_text("one\ntwo\nthree\n")
    r = call("read", {"path": "a.py"}, ctx)
    assert r.content == "     1\tone\n     2\ttwo\n     3\tthree"
    assert (r.total_lines, r.end_line, r.truncated) == (3, 3, False)
    assert "a.py" in ctx.read_stamps


def test_read_range_and_caps(ctx, git_repo):
    (git_repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    r = call("read", {"path": "big.txt", "start_line": 10, "end_line": 12}, ctx)
    assert r.content.splitlines()[0] == "    10\tline 10" and r.end_line == 12
    r = call("read", {"path": "big.txt", "start_line": 999, "end_line": 5000}, ctx)
    assert (r.end_line, r.truncated) == (1000, False)
    r = call("read", {"path": "big.txt", "max_lines": 5}, ctx)
    assert r.end_line == 5 and r.truncated
    r = call("read", {"path": "big.txt", "max_bytes": 200}, ctx)
    assert len(r.content) <= 200 and r.truncated and r.end_line < 20
    with pytest.raises(ToolError, match="past the end"):
        call("read", {"path": "big.txt", "start_line": 5000}, ctx)


def test_read_binary_is_refused(ctx, git_repo):
    (git_repo / "img.bin").write_bytes(b"\x89PNG\0\0\x01\x02")
    with pytest.raises(ToolError, match="binary file"):
        call("read", {"path": "img.bin"}, ctx)


def test_read_crlf_and_latin1(ctx, git_repo):
    (git_repo / "w.txt").write_bytes(b"caf\xe9\r\nna\xefve\r\n")
    r = call("read", {"path": "w.txt"}, ctx)
    assert r.encoding == "latin-1" and r.line_endings == "CRLF"
    assert r.content == "     1\tcafé\n     2\tnaïve"
    (git_repo / "u.txt").write_bytes("ü\n".encode("utf-16"))
    assert call("read", {"path": "u.txt"}, ctx).content.endswith("ü")


@pytest.mark.parametrize("tool,args", [("read", {"path": "../x"}), ("list", {"path": "/etc"}),
                                       ("glob", {"pattern": "*", "path": ".."})])
def test_escapes_are_refused(ctx, tool, args):
    with pytest.raises(PathOutsideRepoError):
        call(tool, args, ctx)


def test_read_symlink_out_is_refused(ctx, git_repo, tmp_path):
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", git_repo / "link")
    with pytest.raises(PathOutsideRepoError):
        call("read", {"path": "link"}, ctx)


def _tree(repo):
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "m.py").write_text("x = 1\n")
    (repo / "src" / "a.py").write_text("y = 2\n")
    (repo / "src" / ".gitignore").write_text("gen_*.py\n!gen_keep.py\n")
    (repo / "src" / "gen_x.py").write_text("")
    (repo / "src" / "gen_keep.py").write_text("")
    (repo / "debug.log").write_text("noise\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.py").write_text("")


def test_list_respects_gitignore(ctx, git_repo):
    _tree(git_repo)
    r = call("list", {"depth": 3}, ctx)
    assert r.entries == [".gitignore", "README.md", "src/", "src/.gitignore", "src/a.py",
                         "src/gen_keep.py", "src/pkg/", "src/pkg/m.py"]
    assert call("list", {"depth": 1}, ctx).entries == [".gitignore", "README.md", "src/"]
    assert call("list", {"depth": 3, "max_entries": 2}, ctx).truncated


def test_glob_respects_gitignore(ctx, git_repo):
    _tree(git_repo)
    assert call("glob", {"pattern": "*.py"}, ctx).files == ["src/a.py", "src/gen_keep.py",
                                                           "src/pkg/m.py"]
    assert call("glob", {"pattern": "pkg/*.py", "path": "src"}, ctx).files == ["src/pkg/m.py"]
    assert call("glob", {"pattern": "*.py", "max_results": 1}, ctx).truncated


def test_info_exclude_is_respected(ctx, git_repo):
    (git_repo / "secret.txt").write_text("")
    (git_repo / ".git" / "info" / "exclude").write_text("secret.txt\n")
    assert "secret.txt" not in call("glob", {"pattern": "*"}, ctx).files


def test_huge_file_is_refused_with_advice(ctx, git_repo, monkeypatch):
    import tools.textio

    monkeypatch.setattr(tools.textio, "MAX_TEXT_BYTES", 1000)
    (git_repo / "log.txt").write_text("x" * 2000)
    with pytest.raises(ToolError, match="too big to load as text. Use `search`"):
        call("read", {"path": "log.txt"}, ctx)
