"""Snapshots of the main screens (SVG, compared by pytest-textual-snapshot).

Deterministic by construction: fixed terminal sizes, a model whose token counts do not
depend on the temp path, no clocks on screen. Update with `pytest --snapshot-update` after
a deliberate change, and look at the SVGs before committing them.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from agent.model import Usage
from agent.tui.screens.approval import ApprovalScreen
from agent.tui.screens.taskspec import TaskSpecScreen
from agent.tui.widgets.diff_view import DiffView
from tests.scripted import ScriptedModel, call, say
from tests.tui.conftest import send, wait_for


class FixedCountModel(ScriptedModel):
    """Token counts independent of the repository path in the system prompt, and reported
    speeds and cache hits (so the status bar shows them without measuring the clock)."""

    def count_tokens(self, messages, tools) -> int:
        return 1000 + 10 * len(messages)

    def _play(self, reply, messages):
        for event in super()._play(reply, messages):
            if isinstance(event, Usage):
                event = replace(event, cached_tokens=event.prompt_tokens // 2,
                                prefill_tps=2345.0, decode_tps=67.0)
            yield event


@pytest.fixture(autouse=True)
def _stopped_clock(monkeypatch):
    """The status bar's working clock (and spinner) stands still: no clocks on screen."""
    from agent.tui.widgets.status import StatusBar

    monkeypatch.setattr(StatusBar, "clock", staticmethod(lambda: 100.0))


def _commit(repo, name, text):
    (repo / name).write_text(text)
    subprocess.run(["git", "add", name], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", name], cwd=repo, check=True)


def test_transcript_after_a_turn(snap_compare, make_app, git_repo):
    (git_repo / "app.py").write_text("def main():\n    print('hi')\n")
    model = FixedCountModel([call("read", path="app.py"),
                             say("`app.py` defines **main**, which prints `hi`.",
                                 reasoning="Read the file first.")])
    app = make_app(model)

    async def run_before(pilot):
        await send(pilot, "what does app.py do?")
        await wait_for(pilot, lambda: not app.busy)
        await pilot.pause(0.1)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_approval_modal(snap_compare, make_app, git_repo, write_tools):
    model = FixedCountModel([call("_write_file", path="notes.txt", text="remember\n")])
    app = make_app(model, settings={"approval": "ask"})

    async def run_before(pilot):
        await send(pilot, "take a note")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.pause(0.1)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    app.conversation.interrupt()


def test_diff_view_with_one_hunk_rejected(snap_compare, make_app, git_repo, write_tools):
    lines = [f"value_{i} = {i}" for i in range(1, 31)]
    _commit(git_repo, "values.py", "\n".join(lines) + "\n")
    lines[2], lines[26] = "value_3 = 300", "value_27 = 2700"
    model = FixedCountModel([call("_write_file", path="values.py", text="\n".join(lines) + "\n"),
                             say("Changed two values.")])
    app = make_app(model, settings={"approval": "full-auto"})

    async def run_before(pilot):
        await send(pilot, "change two values")
        await wait_for(pilot, lambda: not app.busy and app.query(DiffView))
        await wait_for(pilot, lambda: app.focused is app.query_one("#hunk-0-0"))  # review first
        app.query_one("#hunk-0-1").focus()
        await pilot.press("r")
        await pilot.pause(0.1)
    assert snap_compare(app, terminal_size=(100, 46), run_before=run_before)


def test_task_spec_screen(snap_compare, make_app):
    spec = "Goal: make the date parser accept 29 February in leap years.\nDone when: tests pass."
    app = make_app(FixedCountModel([]), rewrite_on=True, rewrite=lambda text: spec)

    async def run_before(pilot):
        await send(pilot, "fix leap years")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskSpecScreen))
        await pilot.pause(0.1)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_narrow_light_terminal(snap_compare, make_app, git_repo):
    model = FixedCountModel([say("A short answer that has to wrap in a narrow terminal, "
                                 "with `code` and a list:\n\n- one\n- two\n")])
    app = make_app(model, settings={"theme": "light"})

    async def run_before(pilot):
        await send(pilot, "a narrow question")
        await wait_for(pilot, lambda: not app.busy)
        await pilot.pause(0.1)
    assert snap_compare(app, terminal_size=(60, 20), run_before=run_before)
