"""`flashcode` with no subcommand: pick the front end (the app, or the plain line mode when
asked or when stdout is not a terminal), build the model, run.

The model is built through `agent.backends.make_model(settings)`. For the app that happens
in a worker behind a progress bar, so the screen is interactive before the weights load;
the plain mode builds it before the first prompt.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from agent import exitcodes
from agent.config import Settings
from agent.model import BackendError, LanguageModel

Progress = Callable[[float, str], None]


def backend_label(settings: Settings) -> str:
    if settings.endpoint:
        return "endpoint"
    if (settings.model or "").startswith("replay:"):
        return "replay"
    return "local engine"


def model_loader(settings: Settings) -> Callable[[Progress], LanguageModel]:
    """A function that builds the configured model, reporting progress when it can."""
    def load(progress: Progress) -> LanguageModel:
        from agent.backends import make_model  # lazy: the local backend pulls in torch

        progress(0.0, "model")
        if "progress" in inspect.signature(make_model).parameters:
            model = make_model(settings, progress=progress)
        else:
            model = make_model(settings)
        progress(1.0, "model")
        return model
    return load


def run(settings: Settings, root: Path, *, plain: bool, resume: str | None,
        model: LanguageModel | None = None, backend: str | None = None) -> int:
    """Run the interactive session; `model` is given by tests (else it is built here).

    `resume`: None for a new session, "" for the latest one, else a session id.
    """
    from agent.headless import repo_root

    root = repo_root(root)
    if plain or not sys.stdout.isatty():
        return _run_plain(settings, root, resume, model)
    from agent.tui.app import FlashcodeApp

    app = FlashcodeApp(settings, root, model=model,
                       load_model=None if model else model_loader(settings),
                       backend=backend or backend_label(settings),
                       resume=resume)
    app.run()
    return 0 if app.return_code in (None, 0) else app.return_code


def _run_plain(settings: Settings, root: Path, resume: str | None,
               model: LanguageModel | None) -> int:
    from agent.plain import run_plain

    if model is None:
        try:
            model = model_loader(settings)(lambda f, what="": None)
        except BackendError as exc:
            print(f"flashcode: {exc}", file=sys.stderr)
            return exitcodes.BACKEND_UNAVAILABLE
    return run_plain(settings, root, model, resume=resume)
