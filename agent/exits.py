"""How a task ends: every exit is an exception carrying the final message and an exit code."""

from __future__ import annotations

from agent import exitcodes


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


class NeedsApproval(AgentExit):
    status, code = "needs_approval", exitcodes.NEEDS_APPROVAL
