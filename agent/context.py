"""Context management: token budget, truncation of tool output, compaction, AGENTS.md.

- Tool output longer than the limits keeps its head and tail; the full text is spilled to a
  file under the repository (`.flashcode/spill/`) that the model can read.
- Token counts are exact where the backend reports usage: the last reply's prompt +
  completion tokens anchor the count, and only messages added since are estimated.
- Compaction, before the window fills: first old tool outputs and old reasoning are dropped,
  then the oldest assistant turns with their tool results. User messages are kept verbatim.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import prompts
from agent.model import Message

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md")


def estimate_tokens(messages: list[Message]) -> int:
    """A rough count (about 3.5 characters a token for code and English) for unsent text."""
    chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
    return -(-chars * 2 // 7)  # ceil(chars / 3.5)


def too_long(text: str, max_lines: int = 400, max_chars: int = 30_000) -> bool:
    return len(text) > max_chars or len(text.splitlines()) > max_lines


def truncate(text: str, spill_dir: Path, root: Path, max_lines: int = 400,
             max_chars: int = 30_000) -> str:
    """`text` if it is short; else its head and tail around a note naming the spill file."""
    if not too_long(text, max_lines, max_chars):
        return text
    lines = text.splitlines()
    spill_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(text.encode()).hexdigest()[:16] + ".txt"
    spill = spill_dir / name
    spill.write_text(text, encoding="utf-8")
    keep = max_lines // 2
    head, tail = lines[:keep], lines[-keep:] if len(lines) > keep else []
    budget = max_chars // 2  # a few huge lines must not defeat the limit
    head_text, tail_text = "\n".join(head)[:budget], "\n".join(tail)[-budget:]
    try:
        shown = spill.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        shown = str(spill)
    return prompts.render("agent/truncated.md.j2", head=head_text, tail=tail_text,
                          omitted=_omitted(text, lines, head_text, tail_text),
                          spill_path=shown).rstrip("\n")


def _omitted(text: str, lines: list[str], head: str, tail: str) -> str:
    n_lines = len(lines) - head.count("\n") - tail.count("\n") - (2 if tail else 1)
    if n_lines > 0:
        return f"{n_lines} lines"
    return f"{max(len(text) - len(head) - len(tail), 0):,} characters"


@dataclass
class TokenCount:
    """Anchors the count to the backend's usage; estimates only what was added since."""

    anchor_messages: int = 0  # how many messages the anchored count covers
    anchor_tokens: int = 0

    def update(self, n_messages: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.anchor_messages, self.anchor_tokens = n_messages, prompt_tokens + completion_tokens

    def of(self, messages: list[Message]) -> int:
        if not self.anchor_tokens or self.anchor_messages > len(messages):
            return estimate_tokens(messages)
        return self.anchor_tokens + estimate_tokens(messages[self.anchor_messages:])

    def reset(self) -> None:
        self.anchor_messages = self.anchor_tokens = 0


def budget(window: int) -> int:
    """Prompt tokens allowed before compaction: the window less room for a long reply."""
    reserve = min(window // 8, 32_768)
    return int((window - reserve) * 0.9)


def compact(messages: list[Message], target: int, count=estimate_tokens,
            keep_recent: int = 6) -> list[Message]:
    """Messages that fit in `target` tokens where possible; every user message survives."""
    results = {m.get("tool_call_id"): m.get("content") or "" for m in messages
               if m.get("role") == "tool"}  # before their outputs are dropped
    out = _drop_old_outputs(messages, keep_recent)
    dropped, actions = 0, []
    while count(out) > target:
        group = _oldest_turn(out, keep_recent)
        if group is None:
            break
        start, end = group
        actions += digest(out[start], results)
        del out[start:end]
        dropped += 1
    if dropped:
        shown = actions[-MAX_ACTIONS:]
        note = prompts.render("agent/compacted.md.j2", dropped_turns=dropped, actions=shown,
                              earlier=len(actions) - len(shown))
        out.insert(_first_user(out) + 1, {"role": "user", "content": note})
    return out


MAX_ACTIONS = 40


def digest(assistant: Message, results: dict) -> list[str]:
    """One line per thing a dropped turn did: what it said it would do, each call with its
    short arguments and the first line of what came back."""
    lines = []
    said = (assistant.get("content") or "").strip().splitlines()
    if said:
        lines.append(f"said: {_clip(said[0], 120)}")
    for c in assistant.get("tool_calls") or []:
        fn = c.get("function", {})
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {}
        shown = ", ".join(f"{k}={_clip(str(v), 60)}" for k, v in args.items()
                          if isinstance(v, str | int | float | bool) and len(str(v)) <= 200)
        first = next((ln for ln in results.get(c.get("id"), "").splitlines() if ln.strip()), "")
        lines.append(f"{fn.get('name', 'tool')}({shown})" + (f" → {_clip(first, 80)}"
                                                              if first else ""))
    return lines


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _drop_old_outputs(messages: list[Message], keep_recent: int) -> list[Message]:
    tool_idx = [i for i, m in enumerate(messages) if m.get("role") == "tool"]
    old = set(tool_idx[:-keep_recent] if keep_recent else tool_idx)
    names = _call_names(messages)
    out = []
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"),
                         default=-1)
    for i, m in enumerate(messages):
        if i in old and len(m.get("content") or "") > 200:
            stub = prompts.render("agent/dropped_output.md.j2", chars=len(m["content"]),
                                  tool=names.get(m.get("tool_call_id"), "tool"))
            m = {**m, "content": stub.strip()}
        elif m["role"] == "assistant" and i < last_assistant and m.get("reasoning_content"):
            m = {k: v for k, v in m.items() if k != "reasoning_content"}
        out.append(m)
    return out


def _call_names(messages: list[Message]) -> dict[str, str]:
    return {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}


def _first_user(messages: list[Message]) -> int:
    return next((i for i, m in enumerate(messages) if m["role"] == "user"), 0)


def _oldest_turn(messages: list[Message], keep_recent: int) -> tuple[int, int] | None:
    """[start, end) of the oldest assistant message and its tool results, if not recent."""
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if len(assistants) <= max(keep_recent // 2, 1):
        return None
    start = assistants[0]
    end = start + 1
    while end < len(messages) and messages[end]["role"] == "tool":
        end += 1
    return start, end


def system_message(root: Path, instructions: str | None = None) -> str:
    """The system prompt for a repository (instructions discovered when not given)."""
    if instructions is None:
        instructions = discover_instructions(root)
    return prompts.render("system.md.j2", repo_root=str(root), os_name=platform.system(),
                          date=time.strftime("%Y-%m-%d"),
                          shell=os.environ.get("SHELL", "/bin/sh"),
                          instructions=instructions).strip()


def discover_instructions(root: Path, cwd: Path | None = None) -> str:
    """AGENTS.md / CLAUDE.md files from the repository root down to `cwd`, outermost first."""
    root = Path(root).resolve()
    cwd = Path(cwd).resolve() if cwd else root
    if cwd != root and root not in cwd.parents:
        cwd = root
    chain = [root, *reversed([p for p in cwd.parents if root in p.parents])]
    if cwd != root:
        chain.append(cwd)
    parts = []
    for directory in chain:
        for name in INSTRUCTION_FILES:
            path = directory / name
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                parts.append(f"## {rel}\n\n{path.read_text(encoding='utf-8').strip()}")
    return "\n\n".join(parts)


ATTACH_CHARS = 50_000  # of one @file attached to a request; the model reads the rest itself


def with_attachments(text: str, root: Path, ctx) -> str:
    """`text` followed by the content of every file it names as `@path` (through the `read`
    tool: confined to the repository, numbered lines, and the file counts as read)."""
    from tools import base

    parts = [text]
    for rel in mentioned_paths(text, root):
        try:
            result = base.call("read", {"path": rel, "max_bytes": ATTACH_CHARS}, ctx)
        except base.ToolError:
            continue  # e.g. a binary file or one inside .git: the name is in the text anyway
        parts.append(prompts.render("agent/attached.md.j2", path=result.path,
                                    text=result.content, cut=result.truncated).strip())
    return "\n\n".join(parts)


def mentioned_paths(text: str, root: Path) -> list[str]:
    """The `@path` mentions in a request that name existing files, in order, no repeats."""
    found: list[str] = []
    for word in text.split():
        if word.startswith("@") and len(word) > 1:
            rel = word[1:].rstrip(".,;:!?)")
            if (Path(root) / rel).is_file() and rel not in found:
                found.append(rel)
    return found
