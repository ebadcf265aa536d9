"""Escalation to a second model after failed verifications, and cost accounting."""

from __future__ import annotations

from agent.approval import Policy
from agent.cost import Tally, cost_of
from agent.escalation import EscalatingModel, is_failed_verification, read_log
from agent.loop import Agent
from agent.model import Usage
from agent.session import Session
from tests.scripted import ScriptedModel, call, say
from tools.base import ToolContext


class Named(ScriptedModel):
    def __init__(self, name, replies):
        super().__init__(replies)
        self.name = name


def failing_repo(git_repo):
    (git_repo / "test_x.py").write_text("def test_x():\n    assert 1 == 2\n")
    return git_repo


def test_two_failed_test_runs_escalate_to_the_second_model(git_repo, tmp_path):
    repo = failing_repo(git_repo)
    flash = Named("flash", [call("tests"), call("tests"), say("never used")])
    pro = Named("pro", [say("Pro took over.")])
    log = tmp_path / "escalations.jsonl"
    model = EscalatingModel(flash, pro, after_failures=2, log=log, task="t1")
    tally = Tally(prices={"flash": {"input": 1.0, "output": 2.0}, "pro": {"input": 10.0}})
    agent = Agent(model, ToolContext(repo, sandbox="off"),
                  Session.create(repo, "m", base=tmp_path), tally=tally,
                  policy=Policy("full-auto"))
    agent.on_event = model.observe
    result = agent.run("make the tests pass")
    assert result.message == "Pro took over."
    assert len(flash.prompts) == 2 and len(pro.prompts) == 1
    kinds = [r["kind"] for r in read_log(log)]
    assert kinds == ["failure", "failure", "escalation"]
    assert read_log(log)[2]["reason"] == "2 failed verifications"
    assert set(tally.summary()["models"]) == {"flash", "pro"}
    assert tally.cost() > 0


def test_escalate_without_a_second_model_is_refused_and_logged(tmp_path):
    model = EscalatingModel(Named("flash", []), None, log=tmp_path / "l.jsonl")
    assert model.escalate("/escalate") is False and model.name == "flash"
    assert read_log(tmp_path / "l.jsonl")[0]["why"] == "no escalation model"


def test_only_failed_test_runs_count():
    ok = {"type": "tool_result", "name": "tests", "ok": True, "output": {"exit_code": 0,
                                                                         "failed": 0}}
    bad = {**ok, "output": {"exit_code": 1, "failed": 2}}
    shell = {**bad, "name": "shell"}
    assert [is_failed_verification(e) for e in (ok, bad, shell)] == [False, True, False]


def test_cost_uses_cached_and_output_prices():
    prices = {"input": 0.14, "cached_input": 0.028, "output": 0.28}
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=600_000, completion_tokens=500_000)
    assert abs(cost_of(usage, prices) - (0.4 * 0.14 + 0.6 * 0.028 + 0.5 * 0.28)) < 1e-12
    tally = Tally(default_prices=prices)
    tally.add("m", usage)
    tally.add("m", usage)
    assert tally.total_tokens == 3_000_000 and tally.calls == 2
    assert "3,000,000 tokens (1,200,000 cached) in 2 model calls, $0.4256" == tally.line()


def test_a_cost_limit_stops_the_task(git_repo, tmp_path):
    model = ScriptedModel.forever(call("list", path="."))
    from agent.loop import LimitReached, Limits

    agent = Agent(model, ToolContext(git_repo), Session.create(git_repo, "m", base=tmp_path),
                  limits=Limits(max_cost=0.001),
                  tally=Tally(default_prices={"input": 1.0, "output": 1.0}))
    result = agent.run("x")
    assert isinstance(result, LimitReached) and "$" in result.message


def test_exec_escalates_to_an_endpoint_and_logs_it(git_repo, isolated_env, tmp_path):
    import json

    from tests.agent.test_headless import turn, write_recording
    from tests.conftest import run_flashcode
    from tests.fake_openai import FakeOpenAIServer, FakeReply

    repo = failing_repo(git_repo)
    flash = write_recording(tmp_path / "flash.jsonl", [turn("", [("tests", {})])] * 2)
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off"}
    with FakeOpenAIServer([FakeReply(text="Pro says: fix the assert.")]) as server:
        env.update(FLASHCODE_ESCALATION_ENDPOINT=server.url,
                   FLASHCODE_ESCALATION_MODEL_NAME="deepseek-v4-pro")
        out = run_flashcode("exec", "make tests pass", "--json", "--model", flash,
                            "--approval", "full-auto", "-C", str(repo), env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(x) for x in out.stdout.splitlines()]
    assert events[-1]["message"] == "Pro says: fix the assert."
    assert "deepseek-v4-pro" in events[-1]["usage"]["models"]
    log = read_log(tmp_path / "data" / "flashcode" / "escalations.jsonl")
    assert [r["kind"] for r in log] == ["failure", "failure", "escalation"]
    assert log[-1]["task"] == events[0]["id"]
    assert events[-1]["escalations"][0]["model"] == "deepseek-v4-pro"
