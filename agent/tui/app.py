"""The flashcode app: transcript, input and status bar around one `Conversation`.

Threads: the agent runs in a thread worker (`_turn_thread`); it reports through messages
(`AgentEvents`, `TurnFinished`, `ApprovalRequested`) that the app handles on the UI thread.
Approvals block the worker on a Future that the modal's answer completes. Ctrl-C interrupts
the running turn; a second Ctrl-C (or one while idle) quits.

Events queue in an `Inbox` and are drawn in batches, at most every FLUSH_SECONDS; no timer
runs while nothing streams, so an idle app draws nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.widgets import ProgressBar

from agent.completion import PathIndex, append_history, history_path, read_history
from agent.model import LanguageModel, ToolCall
from agent.session import data_dir as default_data_dir
from agent.tui.inbox import Inbox
from agent.tui.loading import ModelLoading
from agent.tui.messages import (
    AgentEvents,
    ApprovalRequested,
    SpecReady,
    TurnFailed,
    TurnFinished,
)
from agent.tui.slash_commands import SlashCommands
from agent.tui.widgets.prompt import PromptBox
from agent.tui.widgets.status import StatusBar
from agent.tui.widgets.transcript import Transcript

if TYPE_CHECKING:  # the rest loads after the first screen is drawn (startup time)
    from concurrent.futures import Future

    from agent.config import Settings
    from agent.conversation import Conversation
    from agent.tui.widgets.diff_view import DiffView

FLUSH_SECONDS = 0.03
ModelLoader = Callable[[Callable[[float, str], None]], LanguageModel]

class FlashcodeApp(ModelLoading, SlashCommands, App):
    CSS_PATH = "app.tcss"
    TITLE = "flashcode"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+c", "interrupt", "interrupt / quit", priority=True),
        Binding("ctrl+q", "quit", "quit", priority=True),
    ]

    def __init__(self, settings: Settings | Callable[[], Settings], root: Path, *,
                 model: LanguageModel | None = None, load_model: ModelLoader | None = None,
                 backend: str = "", resume: str | None = None, data_dir: Path | None = None,
                 rewrite: Callable[[str], str] | None = None, theme: str = ""):
        """`settings`, or a function that loads them: then they load in the worker, after
        the first screen is drawn (with `theme`), and so does the model (`load_model`, else
        the one they configure)."""
        super().__init__()
        self.settings = None if callable(settings) else settings
        self._load_settings = settings if callable(settings) else None
        self.root, self.initial_theme = Path(root).resolve(), theme
        self.model, self.load_model, self.backend = model, load_model, backend
        self.resume_id, self.data_dir = resume, data_dir
        self.rewrite = rewrite  # request → editable task text; default: the model rewrites
        self.conversation: Conversation | None = None
        self.busy = False
        self.interrupting = False
        self.queued: list[str] = []  # requests typed while the model loads
        self._shown = False
        self._ticker = None  # redraws the status bar's clock while the agent works
        self._answer: Future | None = None  # the approval the worker waits for
        self._approval_screen = None  # the question on screen, while one is
        self.inbox = Inbox(lambda: self.post_message(AgentEvents()))
        self._flush_timer = None
        self._last_drain = 0.0

    # --- layout ----------------------------------------------------------------------------

    def compose(self):
        yield Transcript(id="transcript")
        yield ProgressBar(id="loading", total=1.0, show_eta=False)
        history = read_history(history_path(self._data_dir()))
        yield PromptBox(PathIndex(self.root), history, id="input")
        yield StatusBar(id="status")

    def _data_dir(self) -> Path:
        return self.data_dir or default_data_dir()

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_mount(self) -> None:
        self._apply_theme(self.settings.theme if self.settings else self.initial_theme)
        self.query_one("#loading").display = False
        self.query_one(PromptBox).area.focus()
        if self.model is not None:
            self._model_ready(self.model)
        elif self.load_model is not None or self._load_settings is not None:
            self.status.state = "loading"
            self.query_one("#loading").display = True
            # after the first screen is drawn: the worker's imports would hold the GIL
            self.call_after_refresh(self._load_thread)
        else:
            self.transcript.add_notice("No model configured. See `flashcode doctor`.", "error")

    # --- input -----------------------------------------------------------------------------

    @on(PromptBox.Submitted)
    def _submitted(self, message: PromptBox.Submitted) -> None:
        append_history(history_path(self._data_dir()), message.text)
        if message.text.startswith("/"):
            self.slash_command(message.text)
        else:
            self.submit(message.text)

    def submit(self, text: str, shown: bool = False) -> None:
        """Start a turn for `text` (via the task spec screen when rewriting is on); `shown`:
        the request is in the transcript already (it waited in the queue)."""
        self._shown = shown
        if self.conversation is None and self.status.state.startswith("loading"):
            self.queued.append(text)  # sent when the model is ready
            self.transcript.add_user(text)
            self.transcript.add_notice("Queued: it goes to the model as soon as it is loaded.")
            return
        if self.conversation is None:
            self.transcript.add_notice("There is no model to send it to (see above).", "error")
            return
        if self.busy:
            self.transcript.add_notice("The agent is working; Ctrl-C interrupts it.", "error")
            return
        if self.settings.rewrite and self.rewrite is not None:
            self.busy, self.status.state = True, "rewriting"
            self._rewrite_thread(text)
        else:
            self._start_turn(text)

    @work(thread=True, group="agent")
    def _rewrite_thread(self, text: str) -> None:
        try:
            spec = self.rewrite(text)
        except Exception as exc:
            self.post_message(SpecReady(text, None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(SpecReady(text, spec))

    def on_spec_ready(self, message: SpecReady) -> None:
        self.busy, self.status.state = False, "idle"
        if self.interrupting:  # Ctrl-C while rewriting: drop the request
            self.interrupting = False
            self.transcript.add_notice("Cancelled before work started.")
            return
        if message.spec is None:
            self.transcript.add_notice(f"Rewriting failed ({message.error}); sending your "
                                       "words as they are.", "error")
            self._start_turn(message.request)
            return

        def chosen(answer: tuple[str, str] | None) -> None:
            choice, text = answer or ("cancel", "")
            if choice != "cancel":
                self._start_turn(text)
        from agent.tui.screens.taskspec import TaskSpecScreen

        self.push_screen(TaskSpecScreen(message.request, message.spec), chosen)

    def _start_turn(self, text: str) -> None:
        if not self._shown:
            self.transcript.add_user(text)
        self._shown = False
        self.busy, self.interrupting = True, False
        self.status.start_work()
        self._ticker = self.set_interval(0.25, self.status.refresh)
        self.inbox.start_request()
        self._turn_thread(text)

    # --- the agent's thread ----------------------------------------------------------------

    @work(thread=True, group="agent")
    def _turn_thread(self, text: str) -> None:
        try:
            result = self.conversation.run_turn(text)
        except Exception as exc:  # a bug must not leave the app stuck in "working"
            self.post_message(TurnFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(TurnFinished(result))

    def _ask(self, call: ToolCall, effect: str, preview: str | None = None) -> str:
        """The Asker the agent calls on its own thread; blocks until the modal answers."""
        if self.interrupting:
            raise KeyboardInterrupt
        from concurrent.futures import Future

        answer: Future = Future()
        self._answer = answer
        self.post_message(ApprovalRequested(call, effect, answer, preview))
        result = answer.result()
        if result == "interrupt":
            raise KeyboardInterrupt  # the loop turns this into an Interrupted exit
        return result

    async def on_approval_requested(self, message: ApprovalRequested) -> None:
        def answered(result: str | None) -> None:
            if not message.answer.done():
                message.answer.set_result(result or "no")
        await self._flush()  # the call's panel first, then the question
        if message.answer.done():
            return
        from agent.tui.screens.approval import ApprovalScreen

        self._approval_screen = ApprovalScreen(message.call, message.effect, message.preview)
        self.push_screen(self._approval_screen, answered)

    # --- events from the agent -------------------------------------------------------------

    async def on_agent_events(self, message: AgentEvents) -> None:
        if self._flush_timer is not None:
            return  # a drain is already due
        wait = FLUSH_SECONDS - (time.monotonic() - self._last_drain)
        if wait > 0:
            self._flush_timer = self.set_timer(wait, self._flush)
        else:
            await self._flush()

    async def _flush(self) -> None:
        """Draw everything the agent reported so far, in order."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        self._last_drain = time.monotonic()
        for event in self.inbox.take():
            kind = event["type"]
            if kind == "text_delta":
                self.status.streamed += len(event["text"])
                await self.transcript.append_answer(event["text"])
            elif kind == "reasoning_delta":
                self.status.streamed += len(event["text"])
                await self.transcript.append_reasoning(event["text"])
            elif handler := getattr(self, f"_event_{kind}", None):
                handler(event)

    def _event_usage(self, event: dict) -> None:
        self.status.record_usage(event, event.get("ttft"), event.get("gen_seconds"))
        self.status.cost = self.conversation.agent.tally.cost()
        stats = getattr(self.model, "stats", None)
        if callable(stats):
            self.status.kv_bytes = (stats() or {}).get("kv_bytes")

    def _event_assistant(self, event: dict) -> None:
        self.transcript.end_stream()

    def _event_tool_call(self, event: dict) -> None:
        self.transcript.add_tool_call(event["id"], event["name"], event["arguments"])

    def _event_tool_result(self, event: dict) -> None:
        self.transcript.finish_tool_call(event["id"], event["ok"], event["content"],
                                         event.get("output"))

    def _event_format_error(self, event: dict) -> None:
        self.transcript.add_notice(f"Malformed tool call: {event['reason']}", "error")

    def _event_cut_off(self, event: dict) -> None:
        self.transcript.add_notice("The reply was cut off at the length limit; the model "
                                   "continues.")

    def _event_compaction(self, event: dict) -> None:
        self.transcript.add_notice(f"Context compacted to {event['messages']} messages.")

    def _event_mcp(self, event: dict) -> None:
        self.transcript.add_notice(f"MCP server {event['server']} {event['state']}: "
                                   f"{event['error']}", "error")

    async def on_turn_finished(self, message: TurnFinished) -> None:
        await self._flush()
        result = message.result
        if result.exit.status != "submitted":
            self.transcript.add_notice(result.exit.message, result.exit.status)
        self._idle()
        if result.files:  # review first: the keys go to the hunks, Escape back to the prompt
            self.show_diff(result.files, take_focus=True)

    async def on_turn_failed(self, message: TurnFailed) -> None:
        await self._flush()
        self.transcript.add_notice(f"The turn failed: {message.error}", "error")
        self._idle()

    def _idle(self) -> None:
        # A last look once the final blocks are laid out: the answer's end stays in view.
        self.set_timer(0.2, self.transcript.follow)
        self.busy = self.interrupting = False
        self._answer = None
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.status.state = "idle"
        self.status.context_used = self.conversation.context_used()
        self.status.cost = self.conversation.agent.tally.cost()
        self.call_after_refresh(self._next_queued)

    # --- review ----------------------------------------------------------------------------

    def show_diff(self, files, take_focus: bool = False) -> DiffView:
        from agent.tui.widgets.diff_view import DiffView

        view = DiffView(files, take_focus=take_focus)
        self.transcript.add_widget(view)
        return view

    def on_diff_view_decided(self, message: DiffView.Decided) -> None:
        from agent.hunks import HunkError

        total = len(message.view.hunk_views())
        try:
            self.conversation.reject_hunks(message.view.files, message.rejected)
        except HunkError as exc:
            self.transcript.add_notice(str(exc), "error")
            return
        kept = total - len(message.rejected)
        self.transcript.add_notice(f"Kept {kept} hunk(s), reverted {len(message.rejected)}.")
        self.on_diff_view_leave(None)

    def on_diff_view_leave(self, message: DiffView.Leave | None) -> None:
        self.query_one(PromptBox).area.focus()

    # --- keys and leaving ------------------------------------------------------------------

    def exit(self, *args, **kwargs) -> None:
        self._release_worker()  # asyncio waits for executor threads at exit: let ours end
        super().exit(*args, **kwargs)

    def on_unmount(self) -> None:
        self._release_worker()

    def _release_worker(self) -> None:
        if self.conversation is not None and self.busy:
            self.conversation.interrupt()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result("interrupt")

    def action_interrupt(self) -> None:
        if not self.busy or self.interrupting:
            self.exit()
            return
        self.interrupting = True
        self.status.state = "interrupting"
        if self.conversation is not None:
            self.conversation.interrupt()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result("interrupt")
            if self.screen is self._approval_screen:
                self.pop_screen()
        self.transcript.add_notice("Interrupting… (Ctrl-C again quits)")
