"""tests: detection on real project layouts, real pytest / node / cargo runs, parsed summaries."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from tools.base import ToolContext, ToolError, call
from tools.test_report import go_summary
from tools.tests import detect


def test_detection_order(git_repo):
    with pytest.raises(ToolError, match="No test command found"):
        detect(git_repo)
    (git_repo / "Makefile").write_text("all:\n\ttrue\ntest:\n\ttrue\n")
    assert detect(git_repo) == ("make", "make test")
    (git_repo / "Cargo.toml").write_text("[package]\nname='x'\n")
    assert detect(git_repo)[0] == "cargo"
    (git_repo / "go.mod").write_text("module x\n")
    assert detect(git_repo) == ("go", "go test -v ./...")
    (git_repo / "package.json").write_text(json.dumps({"scripts": {"test": "jest"}}))
    (git_repo / "yarn.lock").write_text("")
    assert detect(git_repo) == ("npm", "yarn test")
    (git_repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    assert detect(git_repo)[0] == "pytest" and detect(git_repo)[1].endswith("pytest -q -rfE")
    (git_repo / ".flashcode.toml").write_text('test_command = "./run-tests.sh"\n')
    assert detect(git_repo) == ("configured", "./run-tests.sh")


def test_npm_default_script_is_not_a_test_command(git_repo):
    (git_repo / "package.json").write_text(json.dumps(
        {"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}))
    with pytest.raises(ToolError):
        detect(git_repo)


PYTESTS = '''
import pytest

def test_ok():
    assert 1 + 1 == 2

def test_also_ok():
    pass

def test_wrong():
    value = 41
    assert value == 42, "the answer is off by one"

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_uses_broken(broken):
    pass
'''


def test_real_pytest_run(git_repo):
    (git_repo / "tests").mkdir()
    (git_repo / "tests" / "test_x.py").write_text(PYTESTS)
    (git_repo / ".flashcode.toml").write_text(
        f'test_command = "{sys.executable} -m pytest -q -rfE -p no:cacheprovider"\n')
    r = call("tests", {}, ToolContext(git_repo))
    assert (r.framework, r.exit_code) == ("configured", 1)
    assert (r.passed, r.failed, r.errors) == (2, 1, 1)
    names = [f.name for f in r.failures]
    assert names == ["tests/test_x.py::test_wrong", "tests/test_x.py::test_uses_broken"]
    assert "off by one" in r.failures[0].output and "fixture exploded" in r.failures[1].output
    r = call("tests", {"args": ["tests/test_x.py::test_ok"]}, ToolContext(git_repo))
    assert (r.exit_code, r.passed, r.failed, r.failures) == (0, 1, 0, [])


@pytest.mark.skipif(not shutil.which("npm"), reason="npm not installed")
def test_real_node_test_run(git_repo):
    (git_repo / "package.json").write_text(json.dumps({"scripts": {"test": "node --test"}}))
    (git_repo / "a.test.js").write_text(
        'const test = require("node:test"); const assert = require("assert");\n'
        'test("adds", () => { assert.equal(1 + 1, 2); });\n'
        'test("breaks", () => { assert.equal(1, 2); });\n')
    r = call("tests", {}, ToolContext(git_repo, sandbox="off"))
    assert r.command == "npm test" and r.exit_code != 0
    assert (r.passed, r.failed) == (1, 1)
    assert r.failures[0].name == "breaks" and "1 == 2" in r.failures[0].output


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("cargo"), reason="cargo not installed")
def test_real_cargo_run(git_repo):
    (git_repo / "Cargo.toml").write_text('[package]\nname = "t"\nversion = "0.1.0"\n'
                                         'edition = "2021"\n')
    (git_repo / "src").mkdir()
    (git_repo / "src" / "lib.rs").write_text(
        "#[cfg(test)]\nmod t {\n #[test] fn good() { assert_eq!(2, 1 + 1); }\n"
        " #[test] fn bad() { assert_eq!(3, 1 + 1, \"sum is wrong\"); }\n}\n")
    r = call("tests", {}, ToolContext(git_repo, sandbox="off"))
    assert (r.framework, r.passed, r.failed) == ("cargo", 1, 1)
    assert r.failures[0].name == "t::bad" and "sum is wrong" in r.failures[0].output


def test_go_output_parses():
    out = ("=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n=== RUN   TestSub\n"
           "    calc_test.go:12: got 1, want 2\n--- FAIL: TestSub (0.00s)\nFAIL\n"
           "FAIL\texample.com/calc\t0.002s\n")
    s = go_summary(out)
    assert (s.passed, s.failed) == (1, 1)
    assert s.failures == [("TestSub", "    calc_test.go:12: got 1, want 2")]


def test_unparsed_output_still_reports_exit(git_repo):
    r = call("tests", {"command": "echo custom runner; exit 4"}, ToolContext(git_repo))
    assert r.exit_code == 4 and r.passed is None and "custom runner" in r.output
