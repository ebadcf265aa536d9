"""Structured prompt rewriting: repository facts, one constrained call, validation, retry."""

from __future__ import annotations

import json
import subprocess

import pytest

from agent.backends.openai_compat import OpenAIModel
from agent.config import Settings
from agent.conversation import Conversation
from agent.rewrite import (
    RepoFacts,
    RewriteFailed,
    TaskSpec,
    gather_facts,
    parse_spec,
    rewrite,
    task_message,
)
from tests.fake_openai import FakeOpenAIServer, FakeReply
from tests.scripted import ScriptedModel, say

SPEC = {"goal": "add() returns the sum", "context": ["calc.py defines add"],
        "constraints": ["keep the signature"], "acceptance_criteria": ["pytest passes"],
        "deliverable": "a code change", "questions": []}


@pytest.fixture
def py_repo(git_repo):
    (git_repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (git_repo / "src").mkdir()
    (git_repo / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (git_repo / "Makefile").write_text("build:\n\techo hi\ntest:\n\tpytest\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "calc"], cwd=git_repo, check=True)
    (git_repo / "README.md").write_text("changed\n")
    return git_repo


def test_facts_come_from_the_repository(py_repo):
    facts = gather_facts(py_repo, "fix add in calc.py, see src/calc.py and nothing.py",
                         failing_output="AssertionError: assert -1 == 5")
    assert facts.languages == ["Python"]
    assert "pytest" in facts.test_commands and "make test" in facts.test_commands
    assert "make build" in facts.build_commands
    assert facts.mentioned_files == ["src/calc.py"]
    assert "main" in facts.git_state and "README.md" in facts.git_state
    assert "calc" in facts.git_state  # the last commit
    assert "assert -1 == 5" in facts.as_text()


def test_one_call_gives_a_validated_spec(py_repo):
    model = ScriptedModel([say(json.dumps(SPEC))])
    spec = rewrite(model, "fix add", gather_facts(py_repo, "fix add"))
    assert spec == TaskSpec(**SPEC)
    system, user = model.prompts[0]
    assert '"acceptance_criteria"' in system["content"]  # the schema is in the prompt
    assert "fix add" in user["content"] and "Python" in user["content"]


def test_an_invalid_answer_is_retried_once_with_the_reason():
    bad = {k: v for k, v in SPEC.items() if k != "goal"}
    model = ScriptedModel([say(json.dumps(bad)), say("```json\n" + json.dumps(SPEC) + "\n```")])
    assert rewrite(model, "fix add", RepoFacts()).goal == SPEC["goal"]
    retry = model.prompts[1][-1]["content"]
    assert "goal" in retry and "Field required" in retry


def test_two_invalid_answers_fail_clearly():
    model = ScriptedModel([say("not json"), say('{"goal": 1}')])
    with pytest.raises(RewriteFailed, match="not valid twice"):
        rewrite(model, "x", RepoFacts())


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="Extra inputs"):
        parse_spec(json.dumps({**SPEC, "extra": 1}))


def test_the_openai_backend_sends_the_json_schema():
    with FakeOpenAIServer([FakeReply(text=json.dumps(SPEC))]) as server:
        spec = rewrite(OpenAIModel(server.url, "m"), "fix add", RepoFacts())
    assert spec.deliverable == "a code change"
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert set(fmt["json_schema"]["schema"]["required"]) == set(SPEC)
    assert server.requests[0]["thinking"] == {"type": "disabled"}


def test_the_task_message_keeps_the_request_verbatim():
    text = task_message("fix add, please!", TaskSpec(**SPEC))
    assert text.startswith("fix add, please!\n")
    assert "Goal: add() returns the sum" in text and "- pytest passes" in text


def test_a_conversation_turns_a_request_into_the_task_text_the_user_reviews(py_repo, tmp_path):
    model = ScriptedModel([say(json.dumps(SPEC))])
    conv = Conversation(model, py_repo, Settings(), data_dir=tmp_path)
    text = conv.rewrite("fix add")
    assert text == task_message("fix add", TaskSpec(**SPEC))
    assert text.startswith("fix add\n") and "Goal: add() returns the sum" in text


def test_a_conversation_says_when_rewriting_fails_so_the_words_go_as_typed(py_repo, tmp_path):
    broken = ScriptedModel([say("nope"), say("still nope")])
    conv = Conversation(broken, py_repo, Settings(), data_dir=tmp_path)
    with pytest.raises(RewriteFailed):
        conv.rewrite("fix add")
