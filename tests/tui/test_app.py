"""The app driven by Pilot with a scripted model, on real git repos: streaming, approvals,
per-hunk review with the files on disk checked, interrupts, resume, the task spec screen."""

from __future__ import annotations

import subprocess
import threading

import pytest

from agent.exits import Interrupted
from agent.model import Done, TextDelta
from agent.session import read_records
from agent.tui.screens.approval import ApprovalScreen
from agent.tui.screens.taskspec import TaskSpecScreen
from agent.tui.widgets.diff_view import DiffView
from agent.tui.widgets.tool_panel import ToolPanel
from agent.tui.widgets.transcript import Answer, Notice, Reasoning, UserMessage
from tests.scripted import ScriptedModel, call, endless_text, say
from tests.tui.conftest import send, wait_for

pytestmark = pytest.mark.anyio


def answers(app) -> str:
    return "\n".join(a.source for a in app.query(Answer))


def notices(app) -> str:
    return "\n".join(str(n.render()) for n in app.query(Notice))


def gated_reply(gate: threading.Event):
    """A reply that streams "Hello ", waits for `gate`, then streams "world"."""
    yield TextDelta("Hello ")
    gate.wait(10)
    yield TextDelta("world")
    yield Done("stop")


async def test_submit_streams_the_answer_and_updates_status(make_app):
    gate = threading.Event()
    model = ScriptedModel([gated_reply(gate)])
    app = make_app(model)
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "say hello")
        await wait_for(pilot, lambda: "Hello" in answers(app))
        assert "world" not in answers(app) and app.busy  # drawn before the reply ended
        gate.set()
        await wait_for(pilot, lambda: not app.busy)
        assert answers(app).strip() == "Hello world"
        assert [str(u.render()) for u in app.query(UserMessage)] == ["say hello"]
        assert app.status.context_used > 0 and app.status.state == "idle"
    records = read_records(app.conversation.session.path)
    assert [r["message"]["role"] for r in records if r["type"] == "message"] == \
        ["system", "user", "assistant"]


async def test_reasoning_and_tool_panel(make_app, git_repo):
    (git_repo / "app.py").write_text("".join(f"x{i} = {i}\n" for i in range(30)))
    model = ScriptedModel([call("read", path="app.py"),
                           say("It defines x0..x29.", reasoning="read it first")])
    app = make_app(model)
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "what is in app.py?")
        await wait_for(pilot, lambda: not app.busy and answers(app))
        panel = app.query_one(ToolPanel)
        assert panel.status == "ok" and "x29 = 29" in panel.output
        assert app.query_one(Reasoning).text == "read it first"
        assert "It defines x0..x29." in answers(app)


async def test_approve_one_call_and_deny_another(make_app, git_repo, write_tools):
    model = ScriptedModel([call("_write_file", path="yes.txt", text="approved\n"),
                           call("_write_file", path="no.txt", text="denied\n"),
                           say("Wrote one file.")])
    app = make_app(model, settings={"approval": "ask"})
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "write two files")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        assert app.screen.call.arguments["path"] == "yes.txt"
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen)
                       and app.screen.call.arguments["path"] == "no.txt")
        await pilot.press("n")
        await wait_for(pilot, lambda: not app.busy)
        assert [p.status for p in app.query(ToolPanel)] == ["ok", "failed"]
    assert (git_repo / "yes.txt").read_text() == "approved\n"
    assert not (git_repo / "no.txt").exists()
    denied = model.prompts[2][-1]
    assert denied["role"] == "tool" and "declined" in denied["content"]


async def test_always_approves_the_rest_of_the_session(make_app, git_repo, write_tools):
    model = ScriptedModel([call("_write_file", path="a.txt", text="1"),
                           call("_write_file", path="b.txt", text="2"), say("ok")])
    app = make_app(model, settings={"approval": "ask"})
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "two files")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: not app.busy)
    assert (git_repo / "a.txt").exists() and (git_repo / "b.txt").exists()


def _commit(repo, path, text):
    (repo / path).write_text(text)
    subprocess.run(["git", "add", path], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", f"add {path}"], cwd=repo, check=True)


async def test_accept_one_hunk_reject_another(make_app, git_repo, write_tools):
    lines = [f"line {i}" for i in range(1, 41)]
    _commit(git_repo, "f.txt", "\n".join(lines) + "\n")
    edited = list(lines)
    edited[1], edited[37] = "line 2 CHANGED", "line 38 CHANGED"
    model = ScriptedModel([call("_write_file", path="f.txt", text="\n".join(edited) + "\n"),
                           call("_write_file", path="new.txt", text="brand new\n"),
                           say("Edited.")])
    app = make_app(model, settings={"approval": "full-auto"})
    async with app.run_test(size=(100, 40)) as pilot:
        await send(pilot, "edit f.txt")
        await wait_for(pilot, lambda: not app.busy and app.query(DiffView))
        view = app.query_one(DiffView)
        assert [v.key for v in view.hunk_views()] == [(0, 0), (0, 1), (1, 0)]
        app.query_one("#hunk-0-1").focus()
        await pilot.press("r")
        app.query_one("#hunk-1-0").focus()
        await pilot.press("r")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Kept 1 hunk(s), reverted 2." in notices(app))
    text = (git_repo / "f.txt").read_text().splitlines()
    assert text[1] == "line 2 CHANGED" and text[37] == "line 38"
    assert not (git_repo / "new.txt").exists()


async def test_ctrl_c_interrupts_streaming_then_quits(make_app):
    model = ScriptedModel([endless_text("more "), say("after the interrupt")])
    app = make_app(model)
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "go on forever")
        await wait_for(pilot, lambda: "more" in answers(app))
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.busy)
        assert "Interrupted by the user" in notices(app)
        assert app.is_running  # the first Ctrl-C stops the turn, not the app
        await send(pilot, "again")
        await wait_for(pilot, lambda: "after the interrupt" in answers(app))
        await wait_for(pilot, lambda: not app.busy)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert not app.is_running


async def test_ctrl_c_during_an_approval_interrupts_the_turn(make_app, git_repo, write_tools):
    model = ScriptedModel([call("_write_file", path="x.txt", text="x")])
    app = make_app(model, settings={"approval": "ask"})
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "write x")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.busy)
        assert not isinstance(app.screen, ApprovalScreen)
        assert "Interrupted by the user while a tool ran." in notices(app)
    assert not (git_repo / "x.txt").exists()
    last = read_records(app.conversation.session.path)[-1]
    assert last["kind"] == "exit" and last["status"] == Interrupted.status


async def test_resume_shows_the_old_session_and_continues_it(make_app, tmp_path):
    first = make_app(ScriptedModel([say("The first answer.")]))
    async with first.run_test(size=(90, 30)) as pilot:
        await send(pilot, "first question")
        await wait_for(pilot, lambda: not first.busy and answers(first))
    old_id = first.conversation.session.id
    model = ScriptedModel([say("The second answer.")])
    second = make_app(model, resume="")
    async with second.run_test(size=(90, 30)) as pilot:
        await wait_for(pilot, lambda: answers(second))
        assert second.conversation.session.id == old_id
        assert "The first answer." in answers(second)
        assert [str(u.render()) for u in second.query(UserMessage)] == ["first question"]
        await send(pilot, "second question")
        await wait_for(pilot, lambda: "The second answer." in answers(second))
    seen = [m["content"] for m in model.prompts[0] if m["role"] in ("user", "assistant")]
    assert seen == ["first question", "The first answer.", "second question"]


async def test_task_spec_is_shown_edited_and_used(make_app):
    model = ScriptedModel([say("done")])
    spec = lambda text: f"Goal: {text}\nDone when: tests pass"
    app = make_app(model, rewrite_on=True, rewrite=spec)
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "fix it")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskSpecScreen))
        area = app.screen.query_one("#taskspec-text")
        assert area.text.startswith("Goal: fix it")
        area.load_text("Goal: fix the parser")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.busy and answers(app))
    assert model.prompts[0][-1] == {"role": "user", "content": "Goal: fix the parser"}


async def test_task_spec_skip_sends_the_original_words(make_app):
    model = ScriptedModel([say("done")])
    app = make_app(model, rewrite_on=True, rewrite=lambda text: "Goal: something else")
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "my own words")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskSpecScreen))
        await pilot.click("#skip")
        await wait_for(pilot, lambda: not app.busy and answers(app))
    assert model.prompts[0][-1]["content"] == "my own words"


async def test_progress_bar_while_the_model_loads(git_repo, tmp_path):
    from agent.config import Settings
    from agent.tui.app import FlashcodeApp

    release = threading.Event()

    def load(progress):
        progress(0.5, "weights")
        release.wait(10)
        return ScriptedModel([say("loaded and answering"), say("second answer")])
    app = FlashcodeApp(Settings(rewrite=False), git_repo, load_model=load,
                       data_dir=tmp_path / "data", backend="test")
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.query_one("#loading")
        await wait_for(pilot, lambda: bar.progress == 0.5)
        assert bar.display and app.status.state == "loading weights"
        await send(pilot, "too early")
        await pilot.pause()
        assert "Queued" in notices(app) and app.queued == ["too early"]
        release.set()  # the queued request goes as soon as the model is there
        await wait_for(pilot, lambda: "loaded and answering" in answers(app))
        await wait_for(pilot, lambda: not app.busy)
        assert not bar.display and app.status.state == "idle" and app.queued == []
        assert [str(u.render()) for u in app.query(UserMessage)] == ["too early"]
        await send(pilot, "now")
        await wait_for(pilot, lambda: "second answer" in answers(app))


async def test_a_failed_load_is_shown_and_the_app_stays_open(git_repo, tmp_path):
    from agent.config import Settings
    from agent.model import BackendUnavailable
    from agent.tui.app import FlashcodeApp

    def load(progress):
        raise BackendUnavailable("weights not found in /nowhere")
    app = FlashcodeApp(Settings(rewrite=False), git_repo, load_model=load,
                       data_dir=tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "weights not found" in notices(app))
        assert app.is_running and app.status.state == "no model"


async def test_resize_to_a_narrow_terminal_keeps_everything_visible(make_app):
    from tests.tui.conftest import screen_text

    app = make_app(ScriptedModel([say("An answer.")]))
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: not app.busy and answers(app))
        await pilot.resize_terminal(60, 20)
        await pilot.pause(0.1)
        text = screen_text(app)
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 60
        for part in ("question", "An answer.", "Ask, or /help", "idle", "KV", "cache"):
            assert part in text, part
        await send(pilot, "/theme light")
        await pilot.pause()
        assert not app.current_theme.dark


def test_status_bar_measures_speeds_the_backend_does_not_report():
    from agent.tui.widgets.status import StatusBar

    bar = StatusBar()
    bar.record_usage({"prompt_tokens": 1000, "cached_tokens": 600, "completion_tokens": 51},
                     ttft=0.5, gen_seconds=2.0)
    assert bar.prefill_tps is None  # not measured from the time to the first token
    assert bar.decode_tps == 25.5 and bar.cache_reuse == 0.6
    assert bar.context_used == 1051
    bar.record_usage({"prompt_tokens": 10, "completion_tokens": 5, "prefill_tps": 9000.0,
                      "decode_tps": 80.0}, ttft=1.0, gen_seconds=1.0)
    assert bar.prefill_tps == 9000.0 and bar.decode_tps == 80.0  # reported numbers win


async def test_ctrl_c_while_rewriting_cancels_the_request(make_app):
    gate = threading.Event()

    def slow_rewrite(text):
        gate.wait(10)
        return "Goal: never shown"
    model = ScriptedModel([])
    app = make_app(model, rewrite_on=True, rewrite=slow_rewrite)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "do something")
        await wait_for(pilot, lambda: app.status.state == "rewriting")
        await pilot.press("ctrl+c")
        gate.set()
        await wait_for(pilot, lambda: "Cancelled before work started." in notices(app))
        assert not isinstance(app.screen, TaskSpecScreen) and not app.busy
    assert model.prompts == []


async def test_a_real_shell_call_shows_its_exit_status(make_app):
    model = ScriptedModel([call("shell", command="echo partial; exit 3"), say("It failed.")])
    app = make_app(model, settings={"approval": "full-auto"})
    async with app.run_test(size=(90, 30)) as pilot:
        await send(pilot, "run it")
        await wait_for(pilot, lambda: not app.busy and answers(app))
        panel = app.query_one(ToolPanel)
        assert panel.status == "failed" and panel.exit_note == " · exit 3"
        assert "exit 3" in str(panel.header.render()) and "partial" in panel.output


async def test_transcript_follows_new_text_until_the_user_scrolls_up(make_app):
    gate = threading.Event()

    def long_reply():
        yield TextDelta(" ".join(f"a{i}" for i in range(600)))
        gate.wait(10)
        yield TextDelta(" " + " ".join(f"b{i}" for i in range(600)) + " END")
        yield Done("stop")
    app = make_app(ScriptedModel([long_reply()]))
    async with app.run_test(size=(60, 16)) as pilot:
        transcript = app.transcript
        await send(pilot, "long answer")
        await wait_for(pilot, lambda: "a599" in answers(app))
        await pilot.pause(0.1)
        assert transcript.max_scroll_y > 0 and transcript.is_vertical_scroll_end
        transcript.action_page_up()  # the user reads back
        gate.set()
        await wait_for(pilot, lambda: not app.busy)
        await pilot.pause(0.3)
        assert transcript.scroll_y < transcript.max_scroll_y - 10  # not yanked to the end
        transcript.action_scroll_end()
        await wait_for(pilot, lambda: transcript.is_vertical_scroll_end)
        assert not transcript.user_scrolled


class KVModel(ScriptedModel):
    """A local-like backend: reports its KV cache bytes, which grow with each reply."""

    def __init__(self, replies):
        super().__init__(replies)
        self.kv = 0

    def stream(self, messages, tools, **kw):
        self.kv += 3 * 1024 * 1024 // 2  # 1.5 MiB more state per reply
        return super().stream(messages, tools, **kw)

    def stats(self) -> dict:
        return {"kv_bytes": self.kv, "kv_sequences": len(self.prompts)}


async def test_status_bar_shows_the_kv_size_a_backend_reports(make_app):
    from tests.tui.conftest import screen_text

    plain = make_app(ScriptedModel([say("No stats here.")]))
    async with plain.run_test(size=(120, 30)) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: not plain.busy and answers(plain))
        assert plain.status.kv_bytes is None and "KV –" in screen_text(plain)
    app = make_app(KVModel([say("One."), say("Two.")]))
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: not app.busy and "One." in answers(app))
        await pilot.pause(0.1)
        assert app.status.kv_bytes == 1_572_864 and "KV 1.5 MiB" in screen_text(app)
        await send(pilot, "second")
        await wait_for(pilot, lambda: not app.busy and "Two." in answers(app))
        await pilot.pause(0.1)
        assert "KV 3.0 MiB" in screen_text(app)
