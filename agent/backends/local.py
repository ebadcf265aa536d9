"""`--model DIR`: the in-process DeepSeek-V4 engine, imported lazily (torch loads only here).

The engine's surface (engine/api.py) is expected to be:
    Engine.load(path, kernels=..., device_map=...) -> Engine
    engine.stream(messages, tools, thinking=..., max_tokens=..., response_format=...)
        yields agent.model events (or objects with the same class names and fields)
    engine.count_tokens(messages, tools) -> int;  engine.context_window -> int
"""

from __future__ import annotations

from agent.model import BackendUnavailable

NOT_AVAILABLE = ("the in-process engine is not available in this build; use an endpoint "
                 "instead: --endpoint URL --model-name NAME (vLLM, SGLang, the DeepSeek API, "
                 "or `flashcode serve` on a machine with the weights)")


def load(settings):
    """A LanguageModel over the in-process engine, or BackendUnavailable saying why not."""
    import importlib

    try:  # by name: engine.api may not exist in this build, and importing it loads torch
        Engine = importlib.import_module("engine.api").Engine
    except (ImportError, AttributeError):
        raise BackendUnavailable(NOT_AVAILABLE) from None
    engine = Engine.load(settings.model, kernels=settings.kernels,
                         device_map=settings.device_map)
    engine.name = f"local:{settings.model}"
    return engine
