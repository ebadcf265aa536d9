"""Settings → a model, a session and a finished `Agent`: the one place that builds an agent.

Every command and both front ends get their agent from `build_agent`, so the approval policy,
limits, sandbox, prices and escalation are wired the same way everywhere and nothing patches
an Agent after it is built. With an escalation endpoint configured, the agent's model is an
`EscalatingModel` and its failure counter is attached once, as one of the agent's observers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent.approval import Policy
from agent.config import Settings
from agent.cost import Tally
from agent.escalation import EscalatingModel
from agent.loop import Agent, Limits
from agent.model import LanguageModel
from agent.paths import repo_root  # noqa: F401  (callers find it here too)
from agent.session import Session, SessionError, find_session
from agent.toolrun import Asker
from tools.base import ToolContext

if TYPE_CHECKING:
    from agent.mcp import McpTools

Progress = Callable[[float, str], None]


def always_yes(call, effect: str, preview: str | None = None) -> str:
    """The Asker of `--yes`: every action the policy would ask about is approved."""
    return "yes"


def backend_label(settings: Settings) -> str:
    """Where the model runs, in words: endpoint, replay or local engine."""
    if settings.endpoint:
        return "endpoint"
    if (settings.model or "").startswith("replay:"):
        return "replay"
    return "local engine"


def model_loader(settings: Settings) -> Callable[[Progress], LanguageModel]:
    """A function that builds the configured model, reporting progress when it can
    (BackendUnavailable, whose message says what to fix, when there is none)."""
    def load(progress: Progress) -> LanguageModel:
        from agent.backends import make_model  # lazy: the local backend pulls in torch

        progress(0.0, "model")
        if "progress" in inspect.signature(make_model).parameters:
            model = make_model(settings, progress=progress)
        else:
            model = make_model(settings)
        progress(1.0, "model")
        return model
    return load


def open_session(root: Path, model_name: str, resume: str | None = None, cont: bool = False,
                 fork: str | None = None, data_dir: Path | None = None) -> Session:
    """A new session; the one --resume ID / --continue names (the latest for ''); or a fork:
    a new session starting with the first N messages of session ID (`ID:N`; all without N)."""
    if fork is not None:
        sid, _, at = fork.partition(":")
        if at and not at.isdigit():
            raise SessionError(f"--fork {fork}: write ID or ID:N, N a message count.")
        return Session.load(find_session(root, sid or None, data_dir)).fork(
            int(at) if at else None)
    if resume is None and not cont:
        return Session.create(root, model_name, data_dir)
    return Session.load(find_session(root, resume or None, data_dir))


def mcp_tools(settings: Settings, root: Path) -> McpTools | None:
    """The configured MCP servers' tools (None without servers); nothing starts until the
    agent first needs its tool list. Closed at exit, or by `close()`."""
    if not settings.mcp_servers:
        return None
    from agent.mcp import McpTools

    return McpTools(settings.mcp_servers, root)


def build_agent(settings: Settings, model: LanguageModel, root: Path, session: Session, *,
                approval: str | None = None, protected: Iterable[str] = (),
                ask: Asker | None = None,
                on_event: Callable[[dict], None] | None = None,
                mcp: McpTools | None = None) -> Agent:
    """The agent for one session: `approval` overrides the configured mode (propose raises
    `ask` to `auto-edit`), `protected` paths are refused to the file tools (fix), `ask` answers
    approvals (None: nobody can, the run stops instead), `on_event` is the front end, `mcp`
    the MCP servers' tools to share (a conversation keeps one across its sessions; else the
    configured servers get their own)."""
    model = _with_escalation(settings, model, session.id)
    policy = Policy.from_settings(approval or settings.approval, settings.allow, settings.deny)
    limits = Limits(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                    max_seconds=settings.max_seconds, max_cost=settings.max_cost)
    observers = (model.observe,) if isinstance(model, EscalatingModel) else ()
    ctx = ToolContext(root, sandbox=settings.sandbox,
                      spill_cap_bytes=int(settings.output_cap_mib * 2**20))
    return Agent(model, ctx, session,
                 policy=replace(policy, protected=frozenset(protected)), limits=limits,
                 ask=ask, on_event=on_event or _ignore, observers=observers,
                 thinking=settings.thinking, tally=Tally(default_prices=settings.prices),
                 extra_tools=mcp if mcp is not None else mcp_tools(settings, root))


def _ignore(event: dict) -> None:
    pass


def _with_escalation(settings: Settings, model: LanguageModel, task: str) -> LanguageModel:
    """`model`, wrapped to hand over to the escalation endpoint when one is configured."""
    if not settings.escalation_endpoint or isinstance(model, EscalatingModel):
        return model
    from agent.backends.openai_compat import OpenAIModel

    second = OpenAIModel.from_settings(settings, settings.escalation_endpoint,
                                       settings.escalation_model_name)
    return EscalatingModel(model, second, settings.escalate_after, task=task)


def escalations(agent: Agent) -> list[dict]:
    """The hand-overs to the escalation model during this agent's work (for a summary)."""
    model = agent.model
    events = model.events if isinstance(model, EscalatingModel) else []
    return [e for e in events if e["kind"] == "escalation"]
