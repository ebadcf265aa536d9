"""The app's input and slash commands, typed key by key through Pilot."""

from __future__ import annotations

import pytest

from agent import slash
from agent.completion import complete, fuzzy_score
from agent.tui.screens.sessions import SessionsScreen
from tests.scripted import ScriptedModel, call, say
from tests.tui.conftest import send, wait_for
from tests.tui.test_app import answers, notices

pytestmark = pytest.mark.anyio


def prompt_text(app) -> str:
    return app.query_one("#prompt").text


def menu_items(app) -> list[str]:
    menu = app.query_one("#completions")
    return [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]


async def test_slash_completion_then_help(make_app):
    app = make_app(ScriptedModel([]))
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.press(*"/he")
        assert menu_items(app) == [f"/help  {slash.COMMANDS['/help'].help}"]
        await pilot.press("tab")
        assert prompt_text(app) == "/help " and not app.query_one("#completions").display
        await pilot.press("enter")
        await pilot.pause()
        assert "/escalate" in notices(app) and "Ctrl-C interrupts" in notices(app)


async def test_at_path_completion_is_fuzzy(make_app, git_repo):
    (git_repo / "agent").mkdir()
    (git_repo / "agent" / "cli.py").write_text("")
    (git_repo / "agent" / "client_long_name.py").write_text("")
    app = make_app(ScriptedModel([]))
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.press(*"read @acl")
        assert menu_items(app)[0] == "agent/cli.py"
        await pilot.press("down", "enter")  # Enter takes the highlighted item, not submits
        assert prompt_text(app) == "read @agent/client_long_name.py "


async def test_history_and_multiline(make_app):
    app = make_app(ScriptedModel([]))
    async with app.run_test(size=(80, 30)) as pilot:
        await send(pilot, "/cost")
        await send(pilot, "/model")
        await pilot.press("up")
        assert prompt_text(app) == "/model"
        await pilot.press("up")
        assert prompt_text(app) == "/cost"
        await pilot.press("down", "down")
        assert prompt_text(app) == ""
        await pilot.press("a", "ctrl+j", "b")
        assert prompt_text(app) == "a\nb"
        assert "scripted" in notices(app) and "tokens" in notices(app)


async def test_undo_restores_the_files_of_the_last_turn(make_app, git_repo, write_tools):
    model = ScriptedModel([call("_write_file", path="README.md", text="overwritten\n"),
                           say("done")])
    app = make_app(model, settings={"approval": "full-auto"})
    async with app.run_test(size=(80, 30)) as pilot:
        await send(pilot, "overwrite the readme")
        await wait_for(pilot, lambda: not app.busy and answers(app))
        assert (git_repo / "README.md").read_text() == "overwritten\n"
        await send(pilot, "/undo")
        await pilot.pause()
        assert "reverted README.md" in notices(app)
    assert (git_repo / "README.md").read_text() == "hello\n"


async def test_clear_then_sessions_screen_resumes_the_old_one(make_app):
    app = make_app(ScriptedModel([say("first answer")]))
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "first question")
        await wait_for(pilot, lambda: not app.busy and answers(app))
        old = app.conversation.session.id
        await send(pilot, "/clear")
        await pilot.pause()
        assert app.conversation.session.id != old and not answers(app)
        await send(pilot, "/sessions")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
        ids = [s.id for s in app.screen.sessions]
        assert old in ids and app.conversation.session.id in ids
        app.screen.query_one("#sessions-list").highlighted = ids.index(old)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "first answer" in answers(app))
        assert app.conversation.session.id == old


async def test_unknown_command_and_busy_guard(make_app):
    app = make_app(ScriptedModel([]))
    async with app.run_test(size=(80, 30)) as pilot:
        await send(pilot, "/hepl")
        await pilot.pause()
        assert "Unknown command /hepl. Did you mean /help?" in notices(app)


async def test_every_command_runs_in_the_app_and_says_what_plain_mode_says(make_app):
    app = make_app(ScriptedModel([]))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.conversation is not None)
        for name in slash.COMMANDS:
            if name not in ("/quit", "/sessions", "/clear", "/resume"):  # they leave the view
                await send(pilot, name)
                await pilot.pause()
        text = notices(app)
        assert "not available here" not in text and "Unknown command" not in text
        # one function answers for both front ends: the same words
        for name in ("/model", "/cost", "/escalate", "/undo"):
            assert slash.run(app.conversation, name).text in text


def test_fuzzy_ranking_prefers_file_name_starts_and_short_paths():
    assert fuzzy_score("xyz", "agent/cli.py") is None
    files = ["tests/agent/test_cli_long.py", "agent/cli.py", "agent/client.py"]
    ranked = sorted(files, key=lambda f: -fuzzy_score("cli", f))
    assert ranked[0] == "agent/cli.py"
    assert complete("hi /he", 6, None) == []  # a command only at the start of the input
