"""search: ripgrep and the Python fallback give the same results on the same tree."""

from __future__ import annotations

import shutil

import pytest

from tools.base import PathOutsideRepoError, ToolContext, ToolError, call

HAS_RG = shutil.which("rg") is not None


@pytest.fixture
def ctx(git_repo):
    (git_repo / ".gitignore").write_text("*.log\n")
    (git_repo / "src").mkdir()
    (git_repo / "src" / "a.py").write_text("def alpha():\n    return 1\n\ndef beta():\n"
                                           "    return alpha()\n")
    (git_repo / "src" / "b.js").write_text("function alpha() {}\nalpha();\n")
    (git_repo / "src" / "w.txt").write_bytes(b"caf\xe9 alpha\r\nend\r\n")
    (git_repo / "x.log").write_text("alpha\n")
    (git_repo / "bin.dat").write_bytes(b"alpha\0\0")
    (git_repo / ".hidden").write_text("alpha hidden\n")
    return ToolContext(git_repo)


def _run(ctx, engine, **args):
    r = call("search", {"engine": engine, **args}, ctx)
    assert r.engine == ("python" if engine == "python" else "ripgrep")
    return r


ENGINES = ["python"] + (["ripgrep"] if HAS_RG else [])


@pytest.mark.parametrize("engine", ENGINES)
def test_finds_matches_respecting_ignores(ctx, engine):
    r = _run(ctx, engine, pattern="alpha")
    got = [(m.path, m.line, m.text) for m in r.matches]
    assert got == [(".hidden", 1, "alpha hidden"), ("src/a.py", 1, "def alpha():"),
                   ("src/a.py", 5, "    return alpha()"), ("src/b.js", 1, "function alpha() {}"),
                   ("src/b.js", 2, "alpha();"), ("src/w.txt", 1, "café alpha")]


@pytest.mark.parametrize("engine", ENGINES)
def test_regex_glob_context_caps(ctx, engine):
    r = _run(ctx, engine, pattern=r"def \w+\(", glob=["*.py"], context=1)
    assert [(m.line, m.before, m.after) for m in r.matches] == [
        (1, [], ["    return 1"]), (4, [""], ["    return alpha()"])]
    r = _run(ctx, engine, pattern="ALPHA", ignore_case=True, max_results=2)
    assert len(r.matches) == 2 and r.truncated
    r = _run(ctx, engine, pattern="alpha();", literal=True)
    assert [(m.path, m.line) for m in r.matches] == [("src/b.js", 2)]


@pytest.mark.skipif(not HAS_RG, reason="ripgrep not installed")
def test_engines_agree(ctx):
    for args in [{"pattern": "a"}, {"pattern": "return", "context": 2}, {"pattern": "^def"},
                 {"pattern": "alpha", "path": "src"}]:
        assert _run(ctx, "python", **args).matches == _run(ctx, "ripgrep", **args).matches


def test_bad_regex_and_escape(ctx):
    with pytest.raises(ToolError, match="Bad regular expression"):
        call("search", {"pattern": "(unclosed"}, ctx)
    with pytest.raises(PathOutsideRepoError):
        call("search", {"pattern": "x", "path": "../"}, ctx)


@pytest.mark.parametrize("engine", ENGINES)
def test_truncation_keeps_the_first_paths_in_sorted_order(git_repo, engine):
    for rel in ["a/z.py", "a/b/c.py", "a/b.py", "a/b/a.py"]:
        (git_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (git_repo / rel).write_text("needle\n")
    r = _run(ToolContext(git_repo), engine, pattern="needle", max_results=3)
    assert [m.path for m in r.matches] == ["a/b.py", "a/b/a.py", "a/b/c.py"] and r.truncated


def test_auto_falls_back_when_ripgrep_rejects_the_regex(ctx):
    r = call("search", {"pattern": r"alpha(?=\()"}, ctx)  # look-ahead: Python only
    assert r.engine == "python" and len(r.matches) >= 3
