"""How a task ends: every exit is an exception carrying the final message and an exit code;
and the limits (steps, tokens, time, cost) that raise `LimitReached`."""

from __future__ import annotations

from dataclasses import dataclass

from agent import exitcodes
from agent.cost import Tally
from agent.model import BackendError, BackendUnavailable


class AgentExit(Exception):
    status, code = "error", exitcodes.NOT_FIXED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Submitted(AgentExit):
    status, code = "submitted", exitcodes.OK


class LimitReached(AgentExit):
    status = "limit"


class Interrupted(AgentExit):
    status, code = "interrupted", 130


class FormatErrorLimit(AgentExit):
    status = "format_errors"


class ModelFailed(AgentExit):
    status = "model_error"

    @classmethod
    def because(cls, exc: Exception) -> ModelFailed:
        """The exit for an exception from the backend (mid-stream or before it)."""
        if isinstance(exc, BackendError):
            failed = cls(f"The model backend failed: {exc}")
        else:
            failed = cls(f"The model failed mid-reply ({type(exc).__name__}: {exc})")
        if isinstance(exc, BackendUnavailable):
            failed.code = exitcodes.BACKEND_UNAVAILABLE
        return failed


class ReplyCutOff(AgentExit):
    status = "cut_off"  # code: NOT_FIXED (the task was not done)


class NeedsApproval(AgentExit):
    status, code = "needs_approval", exitcodes.NEEDS_APPROVAL


@dataclass
class Limits:
    max_steps: int = 100
    max_tokens: int | None = None  # prompt + completion over the task
    max_seconds: float | None = None
    max_cost: float | None = None  # dollars, from the price table
    max_format_errors: int = 3  # malformed tool calls in a row before giving up
    repeat_reminder_after: int = 3  # identical consecutive calls before a reminder


def check_limits(limits: Limits, steps: int, tally: Tally, elapsed: float,
                 mid_reply: bool = False) -> None:
    """Raise LimitReached when a limit is hit (only time counts in the middle of a reply)."""
    if limits.max_seconds and elapsed >= limits.max_seconds:
        where = ", mid-reply" if mid_reply else ""
        raise LimitReached(f"Stopped after {limits.max_seconds:.0f} s (the time limit){where}.")
    if mid_reply:
        return
    if steps >= limits.max_steps:
        raise LimitReached(f"Stopped after {steps} steps (the step limit).")
    if limits.max_tokens and tally.total_tokens >= limits.max_tokens:
        raise LimitReached(f"Stopped after {tally.total_tokens:,} tokens (the limit is "
                           f"{limits.max_tokens:,}).")
    if limits.max_cost and tally.cost() >= limits.max_cost:
        raise LimitReached(f"Stopped at ${tally.cost():.4f} (the limit is "
                           f"${limits.max_cost:.4f}).")
