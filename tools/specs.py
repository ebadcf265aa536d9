"""Tool specs for a model: name, description (prompts/tools/NAME.md.j2) and JSON-schema
parameters, in the OpenAI function-calling shape the backends and the engine's chat encoding
take."""

from __future__ import annotations

from typing import Any

import prompts
from tools.base import all_tools


def description(name: str) -> str:
    return prompts.render(f"tools/{name}.md.j2").strip()


def tool_specs(names: list[str] | None = None) -> list[dict[str, Any]]:
    """[{"type": "function", "function": {"name", "description", "parameters"}}], sorted."""
    tools = all_tools()
    out = []
    for name in sorted(names or tools):
        if name.startswith("_"):
            continue  # tests register private tools
        schema = tools[name].input.model_json_schema()
        out.append({"type": "function", "function": {
            "name": name, "description": description(name), "parameters": schema}})
    return out
