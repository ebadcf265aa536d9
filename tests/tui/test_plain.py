"""The plain line mode: scripted model, scripted keyboard, real repositories; and the real
`flashcode` picking the plain mode by itself when stdout is a pipe."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from agent.completion import PathIndex
from agent.config import Settings
from agent.plain import PathCompleter, run_plain, terminal_reader
from tests.conftest import REPO_ROOT
from tests.scripted import ScriptedModel, call, say


def lines(*items: str):
    """A Reader answering prompts with `items` in order, then EOF; records the prompts."""
    queue = list(items)
    asked: list[str] = []

    def read(prompt: str) -> str:
        asked.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)
    read.asked = asked
    return read


def plain(git_repo, tmp_path, model, *answers, **settings):
    out = io.StringIO()
    read = lines(*answers)
    settings.setdefault("rewrite", False)
    code = run_plain(Settings(**settings), git_repo, model,
                     data_dir=tmp_path / "data", read=read, out=out)
    return code, out.getvalue(), read.asked


def test_streams_the_answer_and_asks_y_n(git_repo, tmp_path, write_tools):
    model = ScriptedModel([call("_write_file", path="yes.txt", text="ok\n"),
                           call("_write_file", path="no.txt", text="no\n"),
                           say("One file written.", reasoning="two writes")])
    code, out, asked = plain(git_repo, tmp_path, model, "write files", "y", "n")
    assert code == 0
    assert (git_repo / "yes.txt").exists() and not (git_repo / "no.txt").exists()
    assert "→ _write_file yes.txt" in out and "✓ _write_file" in out and "✗ _write_file" in out
    assert "thinking: two writes" in out and "One file written." in out
    assert sum(p.startswith("Allow? [y]es once / [a]lways / [n]o") for p in asked) == 2
    assert "Changed 1 file(s), 1 hunk(s)" in out


def test_diff_command_reviews_hunk_by_hunk(git_repo, tmp_path, write_tools):
    lines_ = [f"l{i}" for i in range(1, 31)]
    (git_repo / "f.txt").write_text("\n".join(lines_) + "\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "f"], cwd=git_repo, check=True)
    edited = list(lines_)
    edited[0], edited[28] = "l1 NEW", "l29 NEW"
    model = ScriptedModel([call("_write_file", path="f.txt", text="\n".join(edited) + "\n"),
                           say("done")])
    code, out, _ = plain(git_repo, tmp_path, model, "edit", "/diff", "y", "n",
                         approval="full-auto")
    text = (git_repo / "f.txt").read_text().splitlines()
    assert text[0] == "l1 NEW" and text[28] == "l29"
    assert "Reverted 1 hunk(s)." in out


def test_commands_and_unknown_ones(git_repo, tmp_path):
    code, out, _ = plain(git_repo, tmp_path, ScriptedModel([]), "/help", "/cost", "/nope",
                         "/quit", "never read")
    assert code == 0 and "/resume" in out and "tokens" in out
    assert "Unknown command /nope" in out


def test_completer_offers_commands_and_fuzzy_paths(git_repo):
    (git_repo / "agent").mkdir()
    (git_repo / "agent" / "cli.py").write_text("")
    (git_repo / "agent" / "client_long_name.py").write_text("")
    completer = PathCompleter(PathIndex(git_repo))
    got = lambda text: [c.text for c in completer.get_completions(Document(text), None)]
    assert got("/res") == ["/resume "]
    assert got("look at @cli")[0] == "@agent/cli.py "
    assert got("hello") == []


def test_terminal_reader_reads_a_line_and_remembers_history(git_repo, tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps("an older request") + "\n")
    with create_pipe_input() as pipe:
        read = terminal_reader(git_repo, history, input=pipe, output=DummyOutput())
        pipe.send_text("hello there\r")
        assert read("> ") == "hello there"
        pipe.send_text("\x1b[A\x1b[A\r")  # Up twice: back past "hello there" to the file's line
        assert read("> ") == "an older request"


def test_real_flashcode_goes_plain_when_stdout_is_a_pipe(git_repo, tmp_path, isolated_env):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"say": "Hi from the script."}]))
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"),
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.tui.scripted_main", str(script),
         "--endpoint", "http://127.0.0.1:9/v1", "--model-name", "scripted", "--no-rewrite",
         "-C", str(git_repo)],
        input="say hi\n", capture_output=True, text=True, timeout=300, env=env,
        cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Hi from the script." in proc.stdout and "> say hi" in proc.stdout
    sessions = list((tmp_path / "data" / "flashcode" / "sessions").rglob("*.jsonl"))
    assert len(sessions) == 1
    assert os.path.getsize(sessions[0]) > 0


def test_task_spec_is_shown_and_accepted(git_repo, tmp_path):
    spec = {"goal": "Explain README.md.", "context": ["README.md says hello"],
            "constraints": [], "acceptance_criteria": ["an answer"],
            "deliverable": "an answer", "questions": []}
    model = ScriptedModel([say(json.dumps(spec)), say("It says hello.")])
    code, out, asked = plain(git_repo, tmp_path, model, "what is the readme?", "a",
                             "/rewrite", "second request, as typed", rewrite=True)
    assert "Task spec:" in out and "Explain README.md." in out and "It says hello." in out
    task = model.prompts[1][-1]["content"]
    assert "what is the readme?" in task and "Explain README.md." in task
    assert "Rewriting requests into a task spec: off." in out


def test_every_slash_command_runs_in_plain_mode(git_repo, tmp_path):
    from agent import slash

    names = [n for n in slash.COMMANDS if n != "/quit"] + ["/quit"]
    code, out, _ = plain(git_repo, tmp_path, ScriptedModel([]), *names, "never read")
    assert code == 0
    assert "not available here" not in out and "Unknown command" not in out
    assert "Model " in out and "Themes apply to the full-screen app." in out


def test_a_write_shows_its_diff_and_a_denial_carries_a_reason(git_repo, tmp_path):
    (git_repo / "a.py").write_text("x = 1\n")
    model = ScriptedModel([call("edit", path="a.py", old="x = 1", new="x = 2"),
                           say("ok")])
    code, out, _ = plain(git_repo, tmp_path, model, "change it", "n keep x at 1, use y")
    assert "-x = 1" in out and "+x = 2" in out  # the diff, before the question
    assert (git_repo / "a.py").read_text() == "x = 1\n"
    told = [m["content"] for m in model.prompts[-1] if m["role"] == "tool"][-1]
    assert "keep x at 1, use y" in told


def test_only_y_or_n_answers_a_hunk_question(git_repo, tmp_path, write_tools):
    model = ScriptedModel([call("_write_file", path="f.txt", text="new\n"), say("done")])
    code, out, asked = plain(git_repo, tmp_path, model, "write", "y", "/diff", "/cost", "y")
    assert "Answer y or n." in out and (git_repo / "f.txt").read_text() == "new\n"
    assert "Reverted 0 hunk(s)." in out


def test_yes_at_the_task_spec_accepts_it(git_repo, tmp_path):
    import json as _json

    spec = {"goal": "g", "context": [], "constraints": [], "acceptance_criteria": [],
            "deliverable": "d", "questions": []}
    model = ScriptedModel([say(_json.dumps(spec)), say("worked on it")])
    code, out, _ = plain(git_repo, tmp_path, model, "do it", "y", rewrite=True)
    assert "worked on it" in out and "Cancelled" not in out


def test_a_piped_session_exits_with_the_last_turns_code_and_says_how_to_resume(git_repo,
                                                                               tmp_path):
    from agent.model import BackendUnavailable

    model = ScriptedModel([[BackendUnavailable("http://127.0.0.1:9/v1 is unreachable")]])
    out = io.StringIO()
    code = run_plain(Settings(rewrite=False), git_repo, model, data_dir=tmp_path / "d",
                     read=lines("hi"), out=out)
    assert code == 4 and out.getvalue().count("unreachable") == 1
    assert "Resume this session: flashcode --resume " in out.getvalue()
