"""The real `flashcode` entry point with one seam swapped: the model comes from a script.

    python -m tests.tui.scripted_main SCRIPT.json [flashcode flags...]

SCRIPT.json is a list of replies: {"say": text, "reasoning"?: text},
{"stream": [delta, ...], "delay"?: seconds} (text deltas, paced), or
{"call": tool, "args": {...}}; {"tools": true} as the first item also registers the test
tools `_write_file` and `_run`. Everything else (argument parsing, settings, the front-end
choice, the app or the plain mode, sessions) is the code a user runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agent import wiring
from agent.cli.main import main as flashcode_main
from agent.model import Done, TextDelta
from tests.scripted import ScriptedModel, call, say
from tests.tui import testtools


def _replies(items: list[dict]) -> list:
    out = []
    for item in items:
        if "stream" in item:  # {"stream": [delta, ...], "delay"?: s}
            parts = [TextDelta(text) for text in item["stream"]]
            out.append(_paced(parts, float(item.get("delay", 0))))
        elif "say" in item:
            out.append(say(item["say"], item.get("reasoning", "")))
        elif "call" in item:
            out.append(call(item["call"], **item.get("args", {})))
    return out


def _paced(deltas: list, delay: float):
    """The deltas with `delay` seconds before each, like tokens from a real model."""
    for delta in deltas:
        if delay:
            time.sleep(delay)
        yield delta
    yield Done("stop")


def main(argv: list[str]) -> int:
    items = json.loads(Path(argv[0]).read_text())
    if items and items[0].get("tools"):
        testtools.register()
    model = ScriptedModel(_replies(items))
    wiring.model_loader = lambda settings: (lambda progress: model)
    return flashcode_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
