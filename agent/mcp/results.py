"""What the model sees of an MCP server: its tools as `mcp__SERVER__TOOL` function specs, and
a tool's result as text.

Function names allow letters, digits, `_` and `-`, at most 64 characters (OpenAI's rule, which
approval rules follow too): other characters become `_`, and a name cut to fit ends in a hash
of the whole so two long names stay apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PREFIX = "mcp__"
MAX_NAME = 64
MAX_DESCRIPTION = 4000  # characters of a tool's description the model reads
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str, taken: set[str]) -> str:
    """`mcp__SERVER__TOOL`, fitted to the rule above and unlike every name in `taken`."""
    full = f"{PREFIX}{server}__{_NOT_ALLOWED.sub('_', tool)}"
    name = full
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(f"{server}/{tool}".encode()).hexdigest()[:8]
        name = f"{full[:MAX_NAME - 9]}_{digest}"
    n = 2
    while name in taken:
        suffix = f"_{n}"
        name, n = f"{name[:MAX_NAME - len(suffix)]}{suffix}", n + 1
    return name


def spec(name: str, tool: Any) -> dict:
    """An OpenAI function spec for an MCP tool (mcp_types.Tool)."""
    description = tool.description or getattr(tool, "title", None) or tool.name
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return {"type": "function", "function": {
        "name": name, "description": description[:MAX_DESCRIPTION], "parameters": schema}}


def result_text(result: Any) -> tuple[str, bool]:
    """(what the model reads, whether the tool succeeded) for a CallToolResult: text as it
    is, images and audio as a note (this model reads text), resources by their text or URI;
    structured content when there is nothing else."""
    parts = [_content_text(c) for c in result.content or []]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, indent=1))
    text = "\n".join(p for p in parts if p) or "(no output)"
    return text, not result.is_error


def _content_text(c: Any) -> str:
    kind = getattr(c, "type", "")
    if kind == "text":
        return c.text
    if kind in ("image", "audio"):
        size = len(c.data or "") * 3 // 4  # base64
        return f"[{kind} ({c.mime_type}, about {size:,} bytes) not shown: this model reads text]"
    if kind == "resource":
        res = c.resource
        text = getattr(res, "text", None)
        if text is not None:
            return f"[resource {res.uri}]\n{text}"
        return f"[resource {res.uri} ({getattr(res, 'mime_type', None) or 'binary'}) not shown]"
    if kind == "resource_link":
        return f"[resource link: {getattr(c, 'name', '')} {c.uri}]"
    return f"[{kind or type(c).__name__} content not shown]"
