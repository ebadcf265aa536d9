"""agent.wiring builds every agent: settings become the policy, limits and sandbox, and the
escalation model's failure counter is attached once, whoever asks for the agent."""

from __future__ import annotations

from agent import wiring
from agent.config import Settings
from agent.conversation import Conversation
from agent.escalation import EscalatingModel
from agent.session import Session
from tests.scripted import ScriptedModel

ESCALATION = {"escalation_endpoint": "http://127.0.0.1:9/v1", "escalation_model_name": "pro",
              "escalate_after": 2}


def _agent(git_repo, tmp_path, **kw):
    settings = kw.pop("settings", Settings())
    session = Session.create(git_repo, "m", tmp_path)
    return wiring.build_agent(settings, ScriptedModel([]), git_repo, session, **kw)


def test_settings_become_the_agent(git_repo, tmp_path):
    settings = Settings(approval="auto-edit", deny=["shell(rm *)"], max_steps=7, sandbox="on",
                        thinking=False)
    agent = _agent(git_repo, tmp_path, settings=settings, protected=["a.txt"],
                   ask=wiring.always_yes)
    assert agent.policy.mode == "auto-edit" and agent.policy.protected == {"a.txt"}
    assert [r.pattern for r in agent.policy.deny] == ["rm *"]
    assert agent.limits.max_steps == 7 and agent.ctx.sandbox == "on"
    assert agent.thinking is False and agent.ask(None, "exec") == "yes"
    assert agent.observers == () and not isinstance(agent.model, EscalatingModel)
    assert _agent(git_repo, tmp_path, approval="full-auto").policy.mode == "full-auto"


def test_escalation_is_attached_once_and_counts_failed_checks(git_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    seen = []
    agent = _agent(git_repo, tmp_path, settings=Settings(**ESCALATION), on_event=seen.append)
    model = agent.model
    assert isinstance(model, EscalatingModel) and agent.observers == (model.observe,)
    failed = {"type": "tests", "when": "after", "ok": False, "command": "pytest",
              "exit_code": 1}
    agent.emit(failed)
    assert not model.escalated and seen == [failed]
    agent.emit(failed)  # the second failed verification hands over
    assert model.escalated and [e["kind"] for e in wiring.escalations(agent)] == ["escalation"]


def test_a_conversation_gets_a_fresh_escalating_agent_per_session(git_repo, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    conv = Conversation(ScriptedModel([]), git_repo, Settings(**ESCALATION), data_dir=tmp_path)
    first = conv.agent
    assert isinstance(conv.model, EscalatingModel) and conv.escalate()
    conv.clear()
    assert conv.agent is not first and isinstance(conv.model, EscalatingModel)
    assert not conv.model.escalated and conv.model.task == conv.session.id
    assert len(conv.agent.observers) == 1
