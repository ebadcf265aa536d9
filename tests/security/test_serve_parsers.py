"""Every field of a valid request to each API, replaced in turn by each hostile value (wrong
types, huge numbers, odd unicode, nesting) or dropped: reading it and preparing it for the
engine either works or raises BadRequest (a 4xx), never anything else (a 500). In process, so
the thousands of cases take seconds; test_serve_fuzz.py sends a random share of them over
the wire."""

from __future__ import annotations

import copy
import json

import pytest

from engine.api import PromptTooLong
from engine.serve import chat_completions, messages, responses
from engine.serve.request import BadRequest
from tests.security.test_serve_fuzz import COUNT, EVIL, MESSAGES, RESPONSES, VALID, _paths

APIS = {"chat": (chat_completions.read, VALID), "responses": (responses.read, RESPONSES),
        "messages": (messages.read, MESSAGES),
        "count_tokens": (lambda body, srv: (messages.read_count(body), None), COUNT)}
_DROP = object()


class FakeServer:
    """What the readers use of the server: the engine, the model name, the response store."""

    def __init__(self, engine) -> None:
        self.engine, self.model_name = engine, "tiny"
        self.responses = responses.Store()


def variants(body: dict):
    """`body` with one field replaced by each hostile value, or dropped."""
    for path, _ in list(_paths(body)):
        if not path:
            continue
        for value in [_DROP, *EVIL]:
            out = copy.deepcopy(body)
            node = out
            for k in path[:-1]:
                node = node[k]
            if value is _DROP:
                del node[path[-1]]
            else:
                node[path[-1]] = copy.deepcopy(value)
            yield path, out


@pytest.mark.parametrize("api", APIS)
def test_every_hostile_field_is_a_400_or_works(engine, api):
    read, bodies = APIS[api]
    srv, tried, refused = FakeServer(engine), 0, 0
    for body in bodies:
        for path, variant in variants(body):
            tried += 1
            try:
                turn, _ = read(json.dumps(variant).encode(), srv)
            except BadRequest:
                refused += 1
                continue
            except Exception as e:
                raise AssertionError(f"{api} {path}: {type(e).__name__}: {e}\n"
                                     f"{json.dumps(variant)[:400]}") from None
            try:
                engine.prepare(turn.messages, turn.tools, turn.params)
            except (PromptTooLong, ValueError):  # server.py answers these with a 400
                refused += 1
            except Exception as e:
                raise AssertionError(f"{api} {path}: {type(e).__name__}: {e}\n"
                                     f"{json.dumps(variant)[:400]}") from None
    assert tried > 200 and 0 < refused < tried
