"""DeepSeek-V4's fixed prompt vocabulary: special-token strings, the tools block, the reasoning
effort preamble, and DSML tool-call markup (render side; parse.py reads it back).

The texts below are DeepSeek's, not ours: the model was trained on them byte for byte (see
../shared/conformance/dsv4-encoding), so they live here as data of the encoding rather than as
templates under prompts/ (which the engine may not import anyway).
"""

from __future__ import annotations

import json
from typing import Any

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
LATEST_REMINDER = "<｜latest_reminder｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
DSML = "｜DSML｜"  # full-width bars (U+FF5C); one special token in the real vocab
TASK_TOKENS = {
    "action": "<｜action｜>",
    "query": "<｜query｜>",
    "authority": "<｜authority｜>",
    "domain": "<｜domain｜>",
    "title": "<｜title｜>",
    "read_url": "<｜read_url｜>",
}
PAD = "<｜▁pad▁｜>"

# Markup literals, in the order they appear in a block.
CALLS_OPEN = f"<{DSML}tool_calls>"
CALLS_CLOSE = f"</{DSML}tool_calls>"
INVOKE_OPEN = f"<{DSML}invoke name=\""
INVOKE_CLOSE = f"</{DSML}invoke>"
PARAM_OPEN = f"<{DSML}parameter name=\""
PARAM_CLOSE = f"</{DSML}parameter>"

# Only "max" adds a preamble in V4 (other efforts render nothing); it ends with a blank line.
EFFORT_MAX = (
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n"
)
REASONING_EFFORTS = ("low", "medium", "high", "max")

_TOOLS_HEAD = f"""## Tools

You have access to a set of tools to help answer the user's question. You can invoke tools by \
writing a "{CALLS_OPEN}" block like the following:

{CALLS_OPEN}
{INVOKE_OPEN}$TOOL_NAME">
{PARAM_OPEN}$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE{PARAM_CLOSE}
...
{INVOKE_CLOSE}
{INVOKE_OPEN}$TOOL_NAME2">
...
{INVOKE_CLOSE}
{CALLS_CLOSE}

String parameters should be specified as is and set `string="true"`. For all other types \
(numbers, booleans, arrays, objects), pass the value in JSON format and set `string="false"`.

If thinking_mode is enabled (triggered by {THINK_OPEN}), you MUST output your complete reasoning \
inside {THINK_OPEN}...{THINK_CLOSE} BEFORE any tool calls or final response.

Otherwise, output directly after {THINK_CLOSE} with tool calls or final response.

### Available Tool Schemas

"""
_TOOLS_TAIL = (
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke "
    "tool calls.\n"
)
_RESPONSE_FORMAT = (
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
)


def to_json(value: Any) -> str:
    """JSON as the official encoder writes it: `", "`/`": "` separators, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


def tools_block(functions: list[dict]) -> str:
    """The "## Tools" section for OpenAI function objects (name, description, parameters)."""
    return _TOOLS_HEAD + "\n".join(to_json(f) for f in functions) + _TOOLS_TAIL


def response_format_block(schema: Any) -> str:
    return _RESPONSE_FORMAT + to_json(schema)


def _param_line(key: str, value: Any) -> str:
    # A raw string holding the DSML marker would end the parameter early (or open markup), so
    # such a value is written as a JSON string with the bars escaped (`\uff5c`): still valid
    # for the official parser, and never ambiguous. Every other value is rendered officially.
    if isinstance(value, str) and DSML not in value:
        flag, text = "true", value
    else:
        flag, text = "false", to_json(value)
        if DSML in text:
            text = text.replace("｜", "\\uff5c")
    return f'{PARAM_OPEN}{key}" string="{flag}">{text}{PARAM_CLOSE}'


def invoke(name: str, arguments: dict[str, Any] | str) -> str:
    """One `invoke` block. Arguments that are not a JSON object travel as one raw string."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else {"arguments": arguments}
    params = "\n".join(_param_line(k, v) for k, v in arguments.items())
    return f'{INVOKE_OPEN}{name}">\n{params}\n{INVOKE_CLOSE}'


def tool_calls_block(calls: list[tuple[str, dict[str, Any] | str]]) -> str:
    """`\\n\\n<｜DSML｜tool_calls>…</｜DSML｜tool_calls>` for (name, arguments) pairs."""
    body = "\n".join(invoke(name, args) for name, args in calls)
    return f"\n\n{CALLS_OPEN}\n{body}\n{CALLS_CLOSE}"
