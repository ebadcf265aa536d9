"""Context: truncation with spill files, compaction that keeps user messages, AGENTS.md."""

from __future__ import annotations

from agent import context
from agent.loop import Agent, Submitted
from agent.session import Session
from tests.scripted import ScriptedModel, call, say
from tools.base import ToolContext


def test_short_output_is_untouched(tmp_path):
    assert context.truncate("a\nb", tmp_path / "spill", tmp_path) == "a\nb"
    assert not (tmp_path / "spill").exists()


def test_long_output_keeps_head_and_tail_and_spills_the_rest(tmp_path):
    text = "\n".join(f"line {i}" for i in range(1000))
    out = context.truncate(text, tmp_path / ".flashcode" / "spill", tmp_path, max_lines=100)
    assert out.startswith("line 0\n") and out.endswith("line 999")
    assert "line 500" not in out and "900 lines omitted" in out
    rel = out.split("the full output is in ")[1].split(":")[0]
    assert rel.startswith(".flashcode/spill/") and (tmp_path / rel).read_text() == text


def test_one_huge_line_is_capped_too(tmp_path):
    out = context.truncate("x" * 100_000, tmp_path / "s", tmp_path, max_chars=2000)
    assert len(out) < 2600 and "99,000 characters omitted" in out


def _conversation(turns: int, size: int) -> list[dict]:
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task one"}]
    for i in range(turns):
        if i == turns // 2:
            msgs.append({"role": "user", "content": "also do task two"})
        msgs.append({"role": "assistant", "content": f"step {i}", "reasoning_content": "r" * 500,
                     "tool_calls": [{"id": f"c{i}", "type": "function",
                                     "function": {"name": "read", "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": f"out{i} " * size})
    return msgs


def _well_formed(msgs: list[dict]) -> bool:
    calls = {c["id"] for m in msgs for c in m.get("tool_calls") or []}
    answered = [m["tool_call_id"] for m in msgs if m["role"] == "tool"]
    return calls == set(answered)


def test_compaction_drops_old_tool_output_first():
    msgs = _conversation(12, 400)
    before = context.estimate_tokens(msgs)
    out = context.compact(msgs, target=before // 2, keep_recent=4)
    assert context.estimate_tokens(out) <= before // 2
    tools = [m["content"] for m in out if m["role"] == "tool"]
    assert all("removed to save context" in t for t in tools[:-4])
    assert all(t.startswith("out") for t in tools[-4:])
    assert len([m for m in out if m["role"] == "assistant"]) == 12  # no turn had to go
    assert "reasoning_content" not in out[2] and _well_formed(out)


def test_compaction_drops_old_turns_but_keeps_every_user_message():
    msgs = _conversation(12, 400)
    out = context.compact(msgs, target=800, keep_recent=4)
    users = [m["content"] for m in out if m["role"] == "user"]
    assert "task one" in users and "also do task two" in users
    assert any("earlier assistant turns" in u for u in users)
    assert len([m for m in out if m["role"] == "assistant"]) < 12 and _well_formed(out)
    assert out[0] == {"role": "system", "content": "sys"}


def test_a_compaction_note_says_what_the_dropped_turns_did():
    msgs = _conversation(12, 400)
    msgs[2]["tool_calls"][0]["function"]["arguments"] = '{"path": "src/app.py"}'
    msgs[3]["content"] = "1 import os\n" + msgs[3]["content"]
    args = '{"command": "pytest -x", "patch": "' + "p" * 300 + '"}'
    msgs[4]["tool_calls"][0]["function"] = {"name": "shell", "arguments": args}
    msgs[5]["content"] = "exit 1\nFAILED test_app.py"
    out = context.compact(msgs, target=800, keep_recent=4)
    note = next(m["content"] for m in out if "earlier assistant turns" in (m["content"] or ""))
    assert "- said: step 0" in note
    assert "- read(path=src/app.py) → 1 import os" in note
    assert "- shell(command=pytest -x) → exit 1" in note  # long arguments left out
    assert note.count("\n- ") >= 4


def test_the_loop_compacts_before_the_window_fills(git_repo, tmp_path):
    for i in range(6):
        (git_repo / f"f{i}.txt").write_text(f"file {i} " * 600 + "\n")
    model = ScriptedModel([call("read", path=f"f{i}.txt") for i in range(6)] + [say("done")],
                          context_window=4096)
    session = Session.create(git_repo, "m", base=tmp_path)
    agent = Agent(model, ToolContext(git_repo), session)
    assert isinstance(agent.run("read all the files"), Submitted)
    kinds = [r.get("kind") for r in session.records if r["type"] == "event"]
    assert "compaction" in kinds
    last_prompt = model.prompts[-1]
    assert context.estimate_tokens(last_prompt) < context.budget(4096)
    assert last_prompt[1] == {"role": "user", "content": "read all the files"}
    assert Session.load(session.path).messages == session.messages  # resume sees the compaction


def test_instructions_are_found_from_the_root_down_to_the_cwd(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "AGENTS.md").write_text("root rules")
    (root / "pkg" / "CLAUDE.md").write_text("pkg rules")
    (root / "pkg" / "sub" / "AGENTS.md").write_text("sub rules")
    (root / "other").mkdir()
    (root / "other" / "AGENTS.md").write_text("not mine")
    text = context.discover_instructions(root, root / "pkg" / "sub")
    assert text.index("root rules") < text.index("pkg rules") < text.index("sub rules")
    assert "## pkg/CLAUDE.md" in text and "not mine" not in text
    assert context.discover_instructions(root) == "## AGENTS.md\n\nroot rules"


def test_instructions_reach_the_system_prompt(git_repo, tmp_path):
    (git_repo / "AGENTS.md").write_text("Always run `make check`.")
    model = ScriptedModel([say("ok")])
    agent = Agent(model, ToolContext(git_repo), Session.create(git_repo, "m", base=tmp_path))
    agent.run("hi")
    assert "Always run `make check`." in model.prompts[0][0]["content"]


def test_token_count_is_anchored_on_reported_usage():
    msgs = [{"role": "user", "content": "x" * 3500}]
    count = context.TokenCount()
    assert count.of(msgs) == context.estimate_tokens(msgs)  # nothing reported yet
    msgs.append({"role": "assistant", "content": "ok"})
    count.update(2, prompt_tokens=1000, completion_tokens=2)
    assert count.of(msgs) == 1002  # exact: nothing added since
    msgs.append({"role": "tool", "tool_call_id": "a", "content": "y" * 350})
    assert 1002 + 100 <= count.of(msgs) <= 1002 + 130
