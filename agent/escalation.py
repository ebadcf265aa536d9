"""Escalation: "Flash by default, Pro for the hard tail".

`EscalatingModel` is a LanguageModel that answers with the primary model until it is
escalated (the user's `/escalate`, or `after_failures` failed verifications, i.e. `tests` tool
runs that fail), then with the secondary (usually V4-Pro behind an endpoint). Every failure
and escalation goes to a local JSONL log (`$XDG_DATA_HOME/flashcode/escalations.jsonl`) that
`read_log` returns for review.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.model import LanguageModel, Message
from agent.session import data_dir


def log_path() -> Path:
    return data_dir() / "escalations.jsonl"


def read_log(path: Path | None = None) -> list[dict]:
    path = path or log_path()
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def is_failed_verification(event: dict) -> bool:
    """A `tests` tool result whose run failed (the loop's tool_result event), or a failed
    verification by `flashcode fix` (its "tests" event after the agent submitted)."""
    if event.get("type") == "tests":
        return event.get("when") == "after" and not event.get("ok")
    if event.get("type") != "tool_result" or event.get("name") != "tests":
        return False
    output = event.get("output") or {}
    return not event.get("ok") or output.get("exit_code") not in (0, None) or \
        bool(output.get("failed")) or bool(output.get("timed_out"))


@dataclass
class EscalatingModel:
    primary: LanguageModel
    secondary: LanguageModel | None = None
    after_failures: int = 2
    log: Path | None = None
    task: str = ""  # a label for the log: session id or task text
    failures: int = 0
    escalated: bool = False
    events: list[dict] = field(default_factory=list)  # this task's log records

    @property
    def current(self) -> LanguageModel:
        return self.secondary if self.escalated and self.secondary else self.primary

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def context_window(self) -> int:
        return self.current.context_window

    def count_tokens(self, messages: list[Message], tools: list[dict]) -> int:
        return self.current.count_tokens(messages, tools)

    def stream(self, messages, tools, **kw):
        return self.current.stream(messages, tools, **kw)

    def escalate(self, reason: str) -> bool:
        """Switch to the secondary model; False (and nothing changes) when there is none."""
        if self.secondary is None or self.escalated:
            self._write("escalation_refused", reason=reason, why="no escalation model"
                        if self.secondary is None else "already escalated")
            return False
        self.escalated = True
        self._write("escalation", reason=reason, model=self.secondary.name)
        return True

    def record_failure(self, kind: str, detail: str) -> None:
        self.failures += 1
        self._write("failure", failure=kind, detail=detail[:2000], count=self.failures)
        if self.failures >= self.after_failures and not self.escalated:
            self.escalate(f"{self.failures} failed verifications")

    def observe(self, event: dict) -> None:
        """Feed the loop's events here (agent.wiring attaches it) to count failed tests."""
        if is_failed_verification(event):
            detail = event.get("content") or event.get("error") or \
                f"`{event.get('command')}` exited {event.get('exit_code')}"
            self.record_failure("verification", detail)

    def _write(self, kind: str, **data) -> None:
        record = {"time": time.time(), "kind": kind, "task": self.task,
                  "model": self.current.name, **data}
        self.events.append(record)
        path = self.log or log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
