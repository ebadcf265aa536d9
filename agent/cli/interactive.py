"""`flashcode` with no subcommand: pick the front end (the app, or the plain line mode when
asked or when stdout is not a terminal), build the model, run.

The model is built by `agent.wiring.model_loader(settings)`. For the app that happens in a
worker behind a progress bar, so the screen is interactive before the weights load; the
plain mode builds it before the first prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import exitcodes, wiring
from agent.cli.args import ask_trust, cwd_of, load, settings_for, untrusted_warning
from agent.config import Settings
from agent.model import BackendError, LanguageModel


def run(args: argparse.Namespace) -> int:
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
    resume = args.resume if args.resume is not None else ("" if args.continue_ else None)
    return run_interactive(settings, cwd_of(args).resolve(), plain=args.plain, resume=resume)


def run_interactive(settings: Settings, root: Path, *, plain: bool, resume: str | None,
                    model: LanguageModel | None = None) -> int:
    """Run the interactive session; `model` is given by tests (else it is built here).

    `resume`: None for a new session, "" for the latest one, else a session id.
    """
    root = wiring.repo_root(root)
    if plain or not sys.stdout.isatty():
        return _run_plain(settings, root, resume, model)
    from agent.tui.app import FlashcodeApp

    app = FlashcodeApp(settings, root, model=model,
                       load_model=None if model else wiring.model_loader(settings),
                       backend=wiring.backend_label(settings), resume=resume)
    app.run()
    from agent.conversation import resume_hint

    if hint := resume_hint(app.conversation):
        print(hint)
    return 0 if app.return_code in (None, 0) else app.return_code


def _run_plain(settings: Settings, root: Path, resume: str | None,
               model: LanguageModel | None) -> int:
    from agent.plain import run_plain

    if model is None:
        try:
            model = wiring.model_loader(settings)(lambda fraction, what: None)
        except BackendError as exc:
            print(f"flashcode: {exc}", file=sys.stderr)
            return exitcodes.BACKEND_UNAVAILABLE
    return run_plain(settings, root, model, resume=resume)
