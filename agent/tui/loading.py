"""The app's side of loading: the settings (when they come as a function), then the model, in
a worker after the first screen is drawn; the progress bar; what happens once the model is
ready (the conversation, a resumed session, requests typed meanwhile). A mixin of
`FlashcodeApp`, kept apart by concern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.widgets import ProgressBar

from agent.model import LanguageModel
from agent.session import Session, SessionError, find_session
from agent.tui.messages import LoadProgress, ModelReady

if TYPE_CHECKING:
    from agent.config import Settings


class ModelLoading:
    """Needs the app's settings, load_model, model, backend, root, data_dir, resume_id,
    transcript, status, queued and submit."""

    def _apply_theme(self, theme: str) -> None:
        self.theme = "textual-light" if theme == "light" else "textual-dark"

    @work(thread=True, group="load")
    def _load_thread(self) -> None:
        progress = lambda f, what="": self.post_message(LoadProgress(f, what))
        try:
            if self.settings is None:
                self._settings_loaded(self._load_settings())
            model = self.load_model(progress)
        except Exception as exc:  # the message is for the user: show it, keep the app open
            self.post_message(ModelReady(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(ModelReady(model))

    def _settings_loaded(self, settings: Settings) -> None:
        """In the worker: the settings arrived; the model they name loads next."""
        from agent import wiring

        self.settings = settings
        self.load_model = self.load_model or wiring.model_loader(settings)
        self.backend = self.backend or wiring.backend_label(settings)
        if settings.theme != self.initial_theme:
            self.call_from_thread(self._apply_theme, settings.theme)

    def on_load_progress(self, message: LoadProgress) -> None:
        self.query_one("#loading", ProgressBar).update(progress=message.fraction)
        self.status.state = f"loading {message.what}".strip()

    def on_model_ready(self, message: ModelReady) -> None:
        self.query_one("#loading").display = False
        if message.model is None:
            self.status.state = "no model"
            self.transcript.add_notice(f"The model did not load: {message.error}", "error")
            return
        self._model_ready(message.model)

    def _model_ready(self, model: LanguageModel) -> None:
        self.model = model
        session = self._session_to_resume()
        from agent.conversation import Conversation

        self.conversation = Conversation(model, self.root, self.settings, session=session,
                                         data_dir=self.data_dir, ask=self._ask,
                                         on_event=self.inbox.put, backend=self.backend)
        self.rewrite = self.rewrite or self.conversation.rewrite
        status = self.status
        status.model_name, status.backend = model.name, self.backend
        status.context_window, status.state = model.context_window, "idle"
        if session is not None:
            self._show_resumed(session)
        self._next_queued()

    def _next_queued(self) -> None:
        """Send the first request typed while the model loaded (shown already)."""
        if self.queued and self.conversation is not None and not self.busy:
            self.submit(self.queued.pop(0), shown=True)

    def _session_to_resume(self) -> Session | None:
        if self.resume_id is None:
            return None
        try:
            return Session.load(find_session(self.root, self.resume_id or None, self.data_dir))
        except SessionError as exc:
            self.transcript.add_notice(f"Cannot resume: {exc} Starting a new session.", "error")
            return None

    def _show_resumed(self, session: Session) -> None:
        self.transcript.replay(session.records)
        self.transcript.add_notice(f"Resumed session {session.id} "
                                   f"({len(session.messages)} messages).")
        self.status.context_used = self.conversation.context_used()
