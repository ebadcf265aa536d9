"""The loop with a scripted model on real git repos, through tools/base and the real tools."""

from __future__ import annotations

import subprocess
import threading

import pytest
from pydantic import BaseModel

from agent import loop
from agent.approval import Policy
from agent.loop import Agent, Limits
from agent.model import Done, TextDelta
from agent.session import Session, read_records
from tests.scripted import (
    ScriptedModel,
    call,
    calls,
    endless_text,
    explode,
    malformed,
    say,
)
from tools import base


class _NoteArgs(BaseModel):
    path: str
    text: str


class _NoteResult(BaseModel):
    path: str
    written: int


class _RunArgs(BaseModel):
    command: str


class _RunResult(BaseModel):
    output: str


@pytest.fixture
def test_tools():
    """Two tools with real effects, registered through tools/base like any tool, then removed
    (private names: tool specs leave them out, calls reach them)."""

    @base.register("_note", _NoteArgs, "write")
    def note(ctx: base.ToolContext, args: _NoteArgs) -> _NoteResult:
        path = ctx.resolve(args.path)
        path.write_text(args.text)
        return _NoteResult(path=ctx.rel(path), written=len(args.text))

    @base.register("_run", _RunArgs, "exec")
    def run(ctx: base.ToolContext, args: _RunArgs) -> _RunResult:
        if args.command == "hang":
            raise KeyboardInterrupt  # what Ctrl-C does to a tool that is running
        return _RunResult(output="x\n" * 1000 if args.command == "big" else args.command)

    yield
    base.REGISTRY.pop("_note", None)
    base.REGISTRY.pop("_run", None)


def make_agent(repo, model, tmp_path, **kw) -> Agent:
    session = Session.create(repo, "scripted", base=tmp_path / "data")
    return Agent(model, base.ToolContext(repo), session, **kw)


def roles(agent: Agent) -> list[str]:
    return [m["role"] for m in agent.session.messages]


def test_reads_a_file_then_answers(git_repo, tmp_path):
    (git_repo / "app.py").write_text("print('hi')\n")
    model = ScriptedModel([call("read", path="app.py"), say("It prints hi.")])
    agent = make_agent(git_repo, model, tmp_path)
    result = agent.run("What does app.py do?")
    assert isinstance(result, loop.Submitted) and result.message == "It prints hi."
    assert roles(agent) == ["system", "user", "assistant", "tool", "assistant"]
    assert "print('hi')" in agent.session.messages[3]["content"]
    assert "print('hi')" in model.prompts[1][-1]["content"]  # the model saw the observation
    names = {t["function"]["name"] for t in model.tools_seen[0]}
    assert {"read", "list", "search"} <= names


def test_session_log_is_written_every_step(git_repo, tmp_path):
    model = ScriptedModel([call("list", path="."), say("done")])
    agent = make_agent(git_repo, model, tmp_path)
    agent.run("list the files")
    records = read_records(agent.session.path)
    assert records[0]["type"] == "meta" and records[-1]["kind"] == "exit"
    msgs = [r for r in records if r["type"] == "message"]
    assert [r["message"]["role"] for r in msgs] == ["system", "user", "assistant", "tool",
                                                     "assistant"]
    assert msgs[2]["usage"]["prompt_tokens"] > 0 and "seconds" in msgs[2]["timing"]
    assert Session.load(agent.session.path).messages == agent.session.messages


def test_tool_error_goes_back_to_the_model(git_repo, tmp_path):
    model = ScriptedModel([call("read", path="missing.py"), call("nope"), say("gave up")])
    agent = make_agent(git_repo, model, tmp_path)
    assert isinstance(agent.run("read it"), loop.Submitted)
    tool_msgs = [m["content"] for m in agent.session.messages if m["role"] == "tool"]
    assert "missing.py" in tool_msgs[0] and tool_msgs[0].startswith("Error from `read`")
    assert "no tool named 'nope'" in tool_msgs[1]


def test_malformed_calls_get_a_format_error_then_the_loop_stops(git_repo, tmp_path):
    model = ScriptedModel([malformed("read", '{"path": '), malformed("read", "[1]"),
                           malformed("read", "{")])
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_format_errors=3))
    result = agent.run("read")
    assert isinstance(result, loop.FormatErrorLimit) and "3 malformed" in result.message
    feedback = [m["content"] for m in model.prompts[1] if m["role"] == "user"][-1]
    assert "not valid JSON" in feedback and "was not run" in feedback
    assert "must be a JSON object" in model.prompts[2][-1]["content"]


def test_a_good_call_resets_the_format_error_count(git_repo, tmp_path):
    model = ScriptedModel([malformed("read", "{"), call("list", path="."),
                           malformed("read", "{"), say("ok")])
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_format_errors=2))
    assert isinstance(agent.run("x"), loop.Submitted)


def test_a_model_that_never_stops_hits_the_step_limit(git_repo, tmp_path):
    model = ScriptedModel.forever(call("list", path="."))
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_steps=5))
    result = agent.run("loop forever")
    assert isinstance(result, loop.LimitReached) and "5 steps" in result.message
    assert len(model.prompts) == 5
    assert roles(agent)[-1] == "tool"  # consistent: every call has its result


def test_repeated_identical_calls_get_a_reminder_not_a_stop(git_repo, tmp_path):
    model = ScriptedModel([call("list", path=".")] * 4 + [say("ok")])
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(repeat_reminder_after=3))
    assert isinstance(agent.run("x"), loop.Submitted)
    tool_msgs = [m["content"] for m in agent.session.messages if m["role"] == "tool"]
    assert ["made this exact" in t for t in tool_msgs] == [False, False, True, True]
    assert "4 times" in tool_msgs[3]


def test_an_exception_mid_stream_ends_cleanly(git_repo, tmp_path):
    model = ScriptedModel([call("list", path="."), explode(say("half an ans"))])
    agent = make_agent(git_repo, model, tmp_path)
    result = agent.run("x")
    assert isinstance(result, loop.ModelFailed) and "connection reset" in result.message
    assert roles(agent)[-1] == "tool"  # the broken turn was not recorded
    resumed = Session.load(agent.session.path)
    assert resumed.messages == agent.session.messages


def test_token_limit(git_repo, tmp_path):
    model = ScriptedModel.forever(call("list", path="."))
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_tokens=500))
    result = agent.run("x")
    assert isinstance(result, loop.LimitReached) and "tokens" in result.message
    assert agent.tally.total_tokens >= 500


def test_time_limit_stops_an_endless_reply(git_repo, tmp_path):
    model = ScriptedModel([endless_text()])
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_seconds=0.2))
    result = agent.run("x")
    assert isinstance(result, loop.LimitReached) and "mid-reply" in result.message
    assert roles(agent) == ["system", "user"]


def test_interrupt_from_another_thread_stops_generation(git_repo, tmp_path):
    model = ScriptedModel([endless_text()])
    agent = make_agent(git_repo, model, tmp_path)
    threading.Timer(0.1, agent.interrupt).start()
    result = agent.run("x")
    assert isinstance(result, loop.Interrupted)
    assert roles(agent) == ["system", "user"]


def test_ctrl_c_in_a_tool_leaves_every_call_answered(git_repo, tmp_path, test_tools):
    model = ScriptedModel([calls(("_run", {"command": "hang"}), ("list", {"path": "."}))])
    agent = make_agent(git_repo, model, tmp_path, policy=Policy("full-auto"))
    result = agent.run("x")
    assert isinstance(result, loop.Interrupted) and result.code == 130
    assert roles(agent) == ["system", "user", "assistant", "tool", "tool"]
    assert "interrupted by the user" in agent.session.messages[-1]["content"]
    # and the user can go on from there
    agent.model = ScriptedModel([say("resumed")])
    assert agent.run("go on").message == "resumed"


def test_policy_asks_and_the_answer_is_respected(git_repo, tmp_path, test_tools):
    asked = []

    def ask(c, effect, preview=None):
        asked.append((c.name, effect))
        return "no" if c.arguments["path"] == "no.txt" else "yes"

    model = ScriptedModel([call("_note", path="no.txt", text="a"),
                           call("_note", path="yes.txt", text="b"), say("ok")])
    agent = make_agent(git_repo, model, tmp_path, ask=ask)
    agent.run("write notes")
    assert asked == [("_note", "write"), ("_note", "write")]
    assert not (git_repo / "no.txt").exists() and (git_repo / "yes.txt").read_text() == "b"
    assert "the user declined it" in agent.session.messages[3]["content"]


def test_headless_ask_without_an_asker_stops_with_needs_approval(git_repo, tmp_path,
                                                                  test_tools):
    model = ScriptedModel([call("_run", command="ls")])
    agent = make_agent(git_repo, model, tmp_path, policy=Policy("auto-edit"))
    result = agent.run("x")
    assert isinstance(result, loop.NeedsApproval) and result.code == 3
    assert roles(agent)[-1] == "tool"


def test_read_only_denies_writes_and_the_model_is_told(git_repo, tmp_path, test_tools):
    model = ScriptedModel([call("_note", path="a.txt", text="x"), say("could not")])
    agent = make_agent(git_repo, model, tmp_path, policy=Policy("read-only"))
    assert isinstance(agent.run("x"), loop.Submitted)
    assert not (git_repo / "a.txt").exists()
    assert "read-only" in agent.session.messages[3]["content"]


def test_long_output_is_truncated_and_spilled(git_repo, tmp_path, test_tools):
    model = ScriptedModel([call("_run", command="big"), say("ok")])
    agent = make_agent(git_repo, model, tmp_path, policy=Policy("full-auto"))
    agent.run("x")
    content = agent.session.messages[3]["content"]
    assert "lines omitted" in content and len(content) < 2000 * 2
    spill = content.split("the full output is in ")[1].split(":")[0]
    assert (git_repo / spill).read_text().count("x\n") == 1000
    status = subprocess.run(["git", "status", "--porcelain"], cwd=git_repo, text=True,
                            capture_output=True).stdout
    assert ".flashcode" not in status  # spill files stay out of the user's git status


def test_ctrl_c_during_generation_leaves_the_conversation_as_it_was(git_repo, tmp_path):
    model = ScriptedModel([call("list", path="."), explode(say("half"), KeyboardInterrupt())])
    agent = make_agent(git_repo, model, tmp_path)
    result = agent.run("x")
    assert isinstance(result, loop.Interrupted)
    assert roles(agent) == ["system", "user", "assistant", "tool"]
    assert Session.load(agent.session.path).messages == agent.session.messages
    agent.model = ScriptedModel([say("carry on")])
    assert isinstance(agent.run("continue"), loop.Submitted)


def test_good_calls_beside_a_malformed_one_run_and_the_bad_one_is_reported(git_repo, tmp_path):
    mixed = [*call("list", path=".")[:-1], *malformed("read", "{")]
    model = ScriptedModel([mixed, say("ok")])
    agent = make_agent(git_repo, model, tmp_path)
    assert isinstance(agent.run("x"), loop.Submitted)
    assert roles(agent) == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert "README.md" in agent.session.messages[3]["content"]
    assert "was not run" in agent.session.messages[4]["content"]


def test_the_step_limit_counts_per_task(git_repo, tmp_path):
    model = ScriptedModel([call("list", path="."), say("one"), call("list", path="."),
                           say("two")])
    agent = make_agent(git_repo, model, tmp_path, limits=Limits(max_steps=2))
    assert agent.run("first").message == "one"
    assert agent.run("second").message == "two"


def test_exact_sampled_tokens_are_logged_when_the_backend_gives_them(git_repo, tmp_path):
    from agent.model import Done, TextDelta

    model = ScriptedModel([[TextDelta("hi"), Done("stop", tokens=[101, 7, 2])]])
    agent = make_agent(git_repo, model, tmp_path)
    agent.run("x")
    record = [r for r in read_records(agent.session.path) if r["type"] == "message"][-1]
    assert record["message"] == {"role": "assistant", "content": "hi"}
    assert record["tokens"] == [101, 7, 2]


def _cut(text: str) -> list:
    return [TextDelta(text), Done("length")]


def test_a_reply_cut_off_at_the_length_limit_is_continued_not_accepted(git_repo, tmp_path):
    model = ScriptedModel([_cut("The answer is 4"), say("2, as I was saying.")])
    agent = make_agent(git_repo, model, tmp_path)
    result = agent.run("what is 2+2?")
    assert isinstance(result, loop.Submitted) and result.message == "2, as I was saying."
    notes = [m["content"] for m in agent.session.messages if m["role"] == "user"]
    assert "cut off at the length limit" in notes[-1]


def test_two_cut_offs_in_a_row_end_the_task_saying_so(git_repo, tmp_path):
    model = ScriptedModel([_cut("a"), _cut("b"), say("never")])
    events: list[dict] = []
    agent = make_agent(git_repo, model, tmp_path, on_event=events.append)
    result = agent.run("x")
    assert result.status == "cut_off" and "cut off" in result.message
    assert [e["type"] for e in events].count("cut_off") == 1
