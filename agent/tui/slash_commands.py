"""The app's side of the slash commands: `agent.slash` runs them; the ones that need this
screen (the /diff review, the /sessions picker, /theme, /help with the keys) are here, and
every notice is shown in the transcript. A mixin of `FlashcodeApp`, kept apart by concern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded with the first command, not with the first screen
    from agent import slash


KEYS_HELP = ("Keys: Enter sends · Ctrl-J new line · Up/Down history · Tab completes /commands "
             "and @paths · Ctrl-C interrupts (twice quits) · Ctrl-Q quits · in a diff: a accept, "
             "r reject, Ctrl-S apply · in an approval: y once, a always, n deny")


class SlashCommands:
    """Needs the app's `conversation`, `busy`, `transcript`, `status` and `show_diff`."""

    def slash_command(self, line: str) -> None:
        from agent import slash

        own = {"/help": self._slash_help, "/diff": self._slash_diff,
               "/sessions": self._slash_sessions, "/theme": self._slash_theme}
        notice = slash.run(self.conversation, line, own, busy=self.busy)
        if notice is None:
            return
        if notice.quit:
            self.exit()
            return
        if notice.session is not None:  # /resume, /clear: show the session switched to
            self.transcript.clear_all()
            self.transcript.replay(notice.session.records)
        self.transcript.add_notice(notice.text, notice.style)
        if self.conversation is not None:
            self.status.context_used = self.conversation.context_used()

    def _slash_help(self, arg: str) -> slash.Notice:
        from agent import slash

        return slash.Notice(slash.help_text() + "\n\n" + KEYS_HELP)

    def _slash_diff(self, arg: str) -> slash.Notice | None:
        from agent import slash

        files = slash.turn_files(self.conversation)
        if isinstance(files, slash.Notice):
            return files
        self.show_diff(files)
        return None

    def _slash_sessions(self, arg: str) -> None:
        from agent.tui.screens.sessions import SessionsScreen

        def chosen(session_id: str | None) -> None:
            if session_id:
                self.slash_command(f"/resume {session_id}")
        self.push_screen(SessionsScreen(self.conversation.sessions(),
                                        self.conversation.session.id), chosen)

    def _slash_theme(self, arg: str) -> None:
        light = arg == "light" if arg in ("dark", "light") else self.current_theme.dark  # toggle
        self.theme = "textual-light" if light else "textual-dark"
        from agent.tui.widgets.diff_view import HunkView

        for view in self.query(HunkView):
            view.refresh()  # its colours come from the theme at render time
