"""Fixtures for the app's tests: settings without user config, a write tool, a Pilot helper."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.config import Settings
from agent.tui.app import FlashcodeApp
from tests.tui import testtools


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio; anyio's pytest plugin runs the async tests


@pytest.fixture
def write_tools():
    """`_write_file` (write) and `_run` (exec), registered like any tool, then removed."""
    testtools.register()
    yield
    testtools.unregister()


@pytest.fixture
def make_app(git_repo, tmp_path):
    def make(model, **kw) -> FlashcodeApp:
        settings = Settings(rewrite=kw.pop("rewrite_on", False), **kw.pop("settings", {}))
        return FlashcodeApp(settings, git_repo, model=model, data_dir=tmp_path / "data",
                            backend="scripted", **kw)
    return make


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds (the agent works on another thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.02)
        await asyncio.sleep(0)


async def send(pilot, text: str) -> None:
    """Type `text` into the prompt and press Enter."""
    area = pilot.app.query_one("#prompt")
    area.focus()  # after a turn that changed files the review has the keys: click back first
    area.load_text(text)
    area.move_cursor(area.document.end)
    await pilot.press("enter")


def screen_text(app) -> str:
    """The screen as plain text, rendered the way the terminal would draw it."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()
