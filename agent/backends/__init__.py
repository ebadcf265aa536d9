"""LanguageModel implementations, and `make_model(settings)` to pick one.

Precedence: an endpoint (`openai`), else `replay:PATH`, else a local checkpoint (`local`).
"""

from __future__ import annotations

from pathlib import Path

from agent.config import Settings
from agent.model import BackendUnavailable, LanguageModel
from agent.session import SessionError


def make_model(settings: Settings) -> LanguageModel:
    """The configured model, or BackendUnavailable whose message says what to fix."""
    if settings.endpoint:
        from agent.backends.openai_compat import OpenAIModel

        return OpenAIModel.from_settings(settings)
    if settings.model and settings.model.startswith("replay:"):
        from agent.backends.replay import ReplayModel

        path = Path(settings.model[len("replay:"):]).expanduser()
        if not path.is_file():
            raise BackendUnavailable(f"replay file {path} does not exist.")
        try:
            return ReplayModel(path, settings.context_window or 1_048_576)
        except SessionError as exc:
            raise BackendUnavailable(f"cannot replay it: {exc}") from None
    if settings.model:
        from agent.backends import local

        return local.load(settings)
    from agent.backends.check import backend_problem

    raise BackendUnavailable(backend_problem(settings) or "no model configured.")
