"""`flashcode` with no subcommand: pick the front end (the app, or the plain line mode when
asked or when stdout is not a terminal), build the model, run.

The app is drawn first: when the settings can be read quickly without validating them
(agent.cli.peek), it starts at once and the settings and the model load in a worker behind a
progress bar. Otherwise (no model anywhere, a trust question, a file that does not parse) the
settings are loaded and checked first, with the same messages and exit codes as every command.
The plain mode builds the model before its first prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import exitcodes
from agent.cli.args import ask_trust, cwd_of, load, settings_for, untrusted_warning
from agent.cli.peek import peek
from agent.paths import repo_root

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.model import LanguageModel


def run(args: argparse.Namespace) -> int:
    resume = args.resume if args.resume is not None else ("" if args.continue_ else None)
    root = repo_root(cwd_of(args).resolve())
    if not args.plain and sys.stdout.isatty() and (quick := peek(args)) is not None:
        return _run_app(lambda: settings_for(args, warn=None), root, resume, theme=quick.theme)
    from agent.backends.check import backend_problem

    settings, project_file, ignored = load(args)
    if ignored and sys.stdin.isatty() and sys.stdout.isatty():  # ask once, on a terminal
        if ask_trust(project_file, ignored):
            settings = settings_for(args)
    elif ignored:
        print(untrusted_warning(project_file, ignored), file=sys.stderr)
    problem = backend_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return exitcodes.BACKEND_UNAVAILABLE
    return run_interactive(settings, root, plain=args.plain, resume=resume)


def run_interactive(settings: Settings, root: Path, *, plain: bool, resume: str | None,
                    model: LanguageModel | None = None) -> int:
    """Run the interactive session; `model` is given by tests (else it is built here).

    `resume`: None for a new session, "" for the latest one, else a session id.
    """
    root = repo_root(root)
    if plain or not sys.stdout.isatty():
        return _run_plain(settings, root, resume, model)
    return _run_app(settings, root, resume, model=model)


def _run_app(settings, root: Path, resume: str | None, *, model=None, theme: str = "") -> int:
    """The full-screen app; `settings` may be a function that loads them (in its worker)."""
    from agent.tui.app import FlashcodeApp

    app = FlashcodeApp(settings, root, model=model, resume=resume, theme=theme)
    app.run()
    from agent.conversation import resume_hint

    if hint := resume_hint(app.conversation):
        print(hint)
    return 0 if app.return_code in (None, 0) else app.return_code


def _run_plain(settings: Settings, root: Path, resume: str | None,
               model: LanguageModel | None) -> int:
    from agent import wiring
    from agent.model import BackendError
    from agent.plain import run_plain

    if model is None:
        try:
            model = wiring.model_loader(settings)(lambda fraction, what: None)
        except BackendError as exc:
            print(f"flashcode: {exc}", file=sys.stderr)
            return exitcodes.BACKEND_UNAVAILABLE
    return run_plain(settings, root, model, resume=resume)
