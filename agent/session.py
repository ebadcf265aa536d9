"""Sessions: an append-only JSONL log, one record a line, flushed and fsynced as it is written.

Stored at `$XDG_DATA_HOME/flashcode/sessions/<repo-hash>/<id>.jsonl`. Records:
    {"type": "meta", "id", "created", "root", "model", "parent": {"id", "at"} | null}
    {"type": "message", "message": {...}, "tokens"?: [int], "usage"?: {...}, "timing"?: {...}}
    {"type": "event", "kind": "exit" | "compaction" | "escalation" | ..., ...}
A process killed mid-write leaves at most one partial last line, which `load` skips; an
assistant turn whose tool calls never got results is repaired on resume, so a killed process
loses at most the step in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.model import Message
from agent.paths import flashcode_dir


class SessionError(Exception):
    """A session cannot be found or read; the message says which and why."""


def data_dir(environ: dict[str, str] | None = None) -> Path:
    return flashcode_dir("data", environ)


def sessions_dir(root: Path, base: Path | None = None) -> Path:
    """Where the sessions of the repository at `root` live."""
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return (base or data_dir()) / "sessions" / digest


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Session:
    path: Path
    id: str
    root: Path
    messages: list[Message] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, model: str = "", base: Path | None = None,
               parent: dict | None = None) -> Session:
        sid = new_id()
        path = sessions_dir(root, base) / f"{sid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        session = cls(path, sid, Path(root).resolve())
        session._write({"type": "meta", "id": sid, "created": time.time(),
                        "root": str(session.root), "model": model, "parent": parent})
        return session

    @classmethod
    def load(cls, path: Path) -> Session:
        records = read_records(path)
        _drop_torn_tail(Path(path))  # so what this session appends starts on its own line
        if not records or records[0].get("type") != "meta":
            raise SessionError(f"{path} is not a flashcode session (no meta record first).")
        meta = records[0]
        session = cls(Path(path), meta["id"], Path(meta["root"]), records=records)
        for r in records:  # a compaction replaces the conversation so far
            if r.get("type") == "message":
                session.messages.append(r["message"])
            elif r.get("type") == "event" and r.get("kind") == "compaction":
                session.messages = list(r["messages"])
        session._repair()
        return session

    def append(self, message: Message, **extra: Any) -> None:
        """Record one model-visible message (with tokens/usage/timing when given)."""
        self.messages.append(message)
        self._write({"type": "message", "message": message,
                     **{k: v for k, v in extra.items() if v is not None}})

    def event(self, kind: str, **data: Any) -> None:
        self._write({"type": "event", "kind": kind, "time": time.time(), **data})

    def fork(self, at: int | None = None, base: Path | None = None) -> Session:
        """A new session holding this one's first `at` messages (all by default)."""
        at = len(self.messages) if at is None else at
        meta = self.records[0] if self.records else {}
        base = base if base is not None else self.path.parent.parent.parent
        child = Session.create(self.root, meta.get("model", ""), base,
                               parent={"id": self.id, "at": at})
        for msg in self.messages[:at]:
            child.append(msg)
        return child

    def _write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)

    def _repair(self) -> None:
        """Give the last assistant turn's unanswered tool calls a result (the loop writes every
        other turn's results before the next query, so only the last can be incomplete)."""
        last = max((i for i, m in enumerate(self.messages) if m.get("role") == "assistant"),
                   default=None)
        if last is None:
            return
        answered = {m.get("tool_call_id") for m in self.messages[last + 1:]
                    if m.get("role") == "tool"}
        for call in self.messages[last].get("tool_calls") or []:
            if call["id"] not in answered:
                self.append({"role": "tool", "tool_call_id": call["id"],
                             "content": "(not run: the session stopped before this tool "
                                        "call ran. Run it again if it is still needed.)"},
                            ok=False)


def read_records(path: Path) -> list[dict]:
    """Every record, each checked for the shape flashcode writes. A torn last line (a process
    killed mid-write) is skipped; any other damage is a SessionError naming the line, so a
    damaged log is refused whole instead of resumed wrong."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise SessionError(f"cannot read session {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SessionError(f"{path} is damaged: not UTF-8 text (byte {exc.start}).") from None
    lines = text.splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if n == len(lines) and not text.endswith("\n"):
                continue  # torn by a kill mid-write: the step in flight is lost, nothing else
            raise SessionError(f"{path} is damaged at line {n}: not a JSON record.") from None
        problem = record_problem(record)
        if problem:
            raise SessionError(f"{path} is damaged at line {n}: {problem}.")
        records.append(record)
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a killed process left without its newline (read_records skipped it)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


def record_problem(r: Any) -> str | None:
    """What is wrong with one session record, or None (the fields flashcode reads)."""
    if not isinstance(r, dict) or r.get("type") not in ("meta", "message", "event"):
        return "not a meta, message or event record"
    if r["type"] == "meta":
        ok = isinstance(r.get("id"), str) and isinstance(r.get("root"), str)
        return None if ok else "a meta record needs a text id and root"
    if r["type"] == "message":
        return message_problem(r.get("message"))
    if not isinstance(r.get("kind"), str):
        return "an event record needs a text kind"
    if r["kind"] == "compaction":
        msgs = r.get("messages")
        if not isinstance(msgs, list):
            return "a compaction event needs a list of messages"
        return next((p for m in msgs if (p := message_problem(m))), None)
    return None


def message_problem(m: Any) -> str | None:
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
        return "a message needs a role: system, user, assistant or tool"
    if not isinstance(m.get("content", ""), str | None):
        return "a message's content must be text"
    if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
        return "a tool message needs a text tool_call_id"
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list) or not all(_call_ok(c) for c in calls):
        return "tool_calls must be a list of {id, function: {name, arguments}}"
    return None


def _call_ok(c: Any) -> bool:
    fn = c.get("function") if isinstance(c, dict) else None
    return isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(fn, dict) and \
        isinstance(fn.get("name"), str) and isinstance(fn.get("arguments", ""), str | dict)


def list_sessions(root: Path, base: Path | None = None) -> list[Path]:
    """Sessions of this repository, oldest first (by modification time)."""
    folder = sessions_dir(root, base)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def find_session(root: Path, session_id: str | None, base: Path | None = None) -> Path:
    """The session with this id (or id prefix, or path); the latest when `session_id` is empty."""
    if session_id and Path(session_id).is_file():
        return Path(session_id)
    found = list_sessions(root, base)
    if session_id:
        found = [p for p in found if p.stem.startswith(session_id)]
    if not found:
        if session_id:
            raise SessionError(f"no session '{session_id}' of {root} (they are kept in "
                               f"{sessions_dir(root, base)}; /sessions in the app lists them).")
        raise SessionError(f"no session of {root} yet: start one without --resume/--continue.")
    return found[-1]
