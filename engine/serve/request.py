"""One request, read as a stranger may send it: the body's length from the headers (one
Content-Length of plain digits, under the limit; no chunked bodies), all of the body or a 400,
and its JSON checked before any other code walks it (no deep nesting, which would exhaust the
stack; no lone surrogates, which the tokenizer cannot encode; no NaN or Infinity).

Every refusal is a `BadRequest` carrying its HTTP status and OpenAI's error body."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BODY = 64 << 20  # bytes; a longer body is refused (413) before it is read
MAX_DEPTH = 128  # JSON nesting: far past any tool schema, far short of the stack's limit
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadRequest(ValueError):
    """Answered with `status` (400 unless said) and OpenAI's error body."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None,
                 status: int = 400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def body_length(headers, limit: int = MAX_BODY) -> int:
    """The body's length in bytes as the headers give it (0 without a Content-Length)."""
    if headers.get("Transfer-Encoding") is not None:
        raise BadRequest("chunked (Transfer-Encoding) request bodies are not supported; send "
                         "the body with a Content-Length", code="length_required", status=411)
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if len(values) > 1:
        raise BadRequest(f"conflicting Content-Length headers: {sorted(values)}")
    text = values.pop() if values else "0"
    if not (text.isascii() and text.isdigit()):  # int() would also take "+5", " 5", "1_0"
        raise BadRequest(f"Content-Length must be a whole number of bytes, not {text[:40]!r}")
    n = int(text) if len(text) <= 18 else limit + 1  # past 4300 digits int() itself refuses
    if n > limit:
        raise BadRequest(f"the request body is {text[:40]} bytes; the limit is {limit}",
                         code="request_too_large", status=413)
    return n


def read_body(rfile, n: int) -> bytes:
    """Exactly `n` bytes, or BadRequest when the client stops sending early."""
    data = rfile.read(n) if n else b""
    if len(data) < n:
        raise BadRequest(f"the request body ended after {len(data)} of the {n} bytes its "
                         "Content-Length promised")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def load_json(body: bytes) -> Any:
    """The body as JSON, or BadRequest saying what is wrong with it."""
    try:
        data = json.loads(body or b"", parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the request body is nested too deeply (the limit is {MAX_DEPTH} "
                         "levels)") from None
    except ValueError as e:  # UnicodeDecodeError included
        raise BadRequest(f"the request body is not valid JSON ({e})") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    """Nesting depth and valid Unicode in every string, keys too (walked without recursion)."""
    todo = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the request body is nested too deeply (the limit is {MAX_DEPTH} "
                             "levels)")
        if isinstance(node, dict):
            todo.extend((k, depth) for k in node)
            todo.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            todo.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and _SURROGATE.search(node):
            raise BadRequest("a string in the request body holds a lone surrogate (an escape "
                             "in \\ud800-\\udfff without its pair): that is not valid Unicode")
