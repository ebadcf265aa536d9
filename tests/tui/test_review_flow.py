"""What a user hit in the first hour (issue 20), driven by Pilot: the review is focused after a
turn, repeated call ids keep their own panels, an approval shows the diff and carries a reason,
rejected hunks and /undo are told to the model, a spinner runs while the agent works, and an
@file's content goes with the request."""

from __future__ import annotations

import subprocess
import threading

import pytest

from agent.model import Done, TextDelta, ToolCall
from agent.tui.screens.approval import ApprovalScreen
from agent.tui.widgets.diff_view import HunkView
from agent.tui.widgets.tool_panel import ToolPanel
from tests.scripted import ScriptedModel, call, say
from tests.tui.conftest import screen_text, send, wait_for
from tests.tui.test_app import notices

pytestmark = pytest.mark.anyio


def _commit(repo, name, text):
    (repo / name).write_text(text)
    subprocess.run(["git", "add", name], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", name], cwd=repo, check=True)


async def test_after_a_turn_the_review_has_the_keys_and_escape_returns(make_app, git_repo,
                                                                       write_tools):
    _commit(git_repo, "f.txt", "one\n")
    model = ScriptedModel([call("_write_file", path="f.txt", text="two\n"), say("Changed."),
                           say("next")])
    app = make_app(model, settings={"approval": "full-auto"})
    async with app.run_test(size=(100, 40)) as pilot:
        await send(pilot, "change f")
        await wait_for(pilot, lambda: isinstance(app.focused, HunkView))
        await pilot.press("r")  # goes to the hunk, not into the prompt
        assert app.query_one(HunkView).decision == "reject"
        assert app.query_one("#prompt").text == ""
        await pilot.press("escape")
        assert app.focused is app.query_one("#prompt")
        app.query_one(HunkView).focus()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "reverted 1" in notices(app))
        assert app.focused is app.query_one("#prompt")
        assert (git_repo / "f.txt").read_text() == "one\n"
        await send(pilot, "what now?")
        await wait_for(pilot, lambda: len(model.prompts) == 3 and not app.busy)
    told = model.prompts[-1][-1]["content"]
    assert "reverted 1 of the hunks you changed" in told and "f.txt" in told


async def test_repeated_call_ids_keep_their_own_panels(make_app, write_tools):
    same = lambda path: [ToolCall("call_0", "_write_file", {"path": path, "text": "x"}),
                         Done("tool_calls")]
    model = ScriptedModel([same("a.txt"), same("b.txt"), same("c.txt"), say("done")])
    app = make_app(model, settings={"approval": "full-auto"})
    async with app.run_test(size=(100, 40)) as pilot:
        await send(pilot, "write three")
        await wait_for(pilot, lambda: not app.busy)
        panels = list(app.query(ToolPanel))
        assert len(panels) == 3 and all(p.status == "ok" for p in panels)


async def test_an_approval_shows_the_diff_and_a_reason_reaches_the_model(make_app, git_repo):
    _commit(git_repo, "a.py", "x = 1\n")
    model = ScriptedModel([call("read", path="a.py"),
                           call("edit", path="a.py", old="x = 1", new="x = 2"), say("ok")])
    app = make_app(model)
    async with app.run_test(size=(100, 40)) as pilot:
        await send(pilot, "change x")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        shown = screen_text(app)
        assert "-x = 1" in shown and "+x = 2" in shown
        app.screen.query_one("#approval-reason").focus()
        for key in "use y":
            await pilot.press("space" if key == " " else key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.busy)
    assert (git_repo / "a.py").read_text() == "x = 1\n"
    told = [m["content"] for m in model.prompts[-1] if m["role"] == "tool"][-1]
    assert "use y" in told


async def test_a_spinner_with_time_and_tokens_while_the_agent_works(make_app):
    gate = threading.Event()

    def slow():
        yield TextDelta("word " * 40)
        gate.wait(10)
        yield Done("stop")
    app = make_app(ScriptedModel([slow()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "go")
        await wait_for(pilot, lambda: app.status.streamed > 0)
        line = str(app.status.render())
        assert "working" in line and "s ·" in line and "~50 tokens" in line
        gate.set()
        await wait_for(pilot, lambda: not app.busy)
        assert "working" not in str(app.status.render())


async def test_an_at_file_goes_with_the_request(make_app, git_repo):
    (git_repo / "notes.md").write_text("the secret word is plover\n")
    model = ScriptedModel([say("ok")])
    app = make_app(model)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "summarize @notes.md please")
        await wait_for(pilot, lambda: not app.busy)
    request = [m for m in model.prompts[0] if m["role"] == "user"][-1]["content"]
    assert request.startswith("summarize @notes.md please")
    assert '<file path="notes.md">' in request and "plover" in request
