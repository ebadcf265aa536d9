"""Structured prompt rewriting: a request plus repository facts become a typed `TaskSpec`.

One model call with schema-constrained output (OpenAI `response_format` json_schema; the
in-process engine constrains decoding with the same schema), validated, retried once with the
error. The front end shows the spec; the user edits or skips it (`--no-rewrite`); the agent
then gets `task_message(request, spec)` as its task.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import prompts
from agent.model import LanguageModel, Reply, Usage
from tools import gitcmd

_LANGUAGES = {".py": "Python", ".js": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript",
              ".go": "Go", ".rs": "Rust", ".java": "Java", ".kt": "Kotlin", ".c": "C",
              ".h": "C", ".cc": "C++", ".cpp": "C++", ".hpp": "C++", ".rb": "Ruby",
              ".php": "PHP", ".cs": "C#", ".swift": "Swift", ".sh": "Shell", ".lua": "Lua"}
_PATHLIKE = re.compile(r"[\w./-]+\.[A-Za-z0-9]{1,6}\b|[\w-]+/[\w./-]+")


class TaskSpec(BaseModel):
    """What the agent is asked to do, made precise. Every field is shown to the user."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(description="one sentence: what is true when the task is done")
    context: list[str] = Field(description="facts that matter: files, commands, failures")
    constraints: list[str] = Field(description="what must not change or must be respected")
    acceptance_criteria: list[str] = Field(description="verifiable checks that show it is done")
    deliverable: str = Field(description="what is handed back: a change, a patch, an answer")
    questions: list[str] = Field(description="ambiguities to ask about before starting")


class RewriteFailed(Exception):
    """The model did not produce a valid TaskSpec in two tries; the request can go as is."""


class RepoFacts(BaseModel):
    languages: list[str] = []
    build_commands: list[str] = []
    test_commands: list[str] = []
    git_state: str = ""
    failing_output: str = ""
    mentioned_files: list[str] = []

    def as_text(self) -> str:
        lines = []
        for name, value in self.model_dump().items():
            if value:
                shown = ", ".join(value) if isinstance(value, list) else value
                lines.append(f"- {name.replace('_', ' ')}: {shown}")
        return "\n".join(lines) or "- (none found)"


def response_format() -> dict:
    return {"type": "json_schema", "json_schema": {
        "name": "task_spec", "strict": True, "schema": TaskSpec.model_json_schema()}}


def rewrite(model: LanguageModel, request: str, facts: RepoFacts,
            on_usage: Callable[[Usage], None] = lambda usage: None) -> TaskSpec:
    """One schema-constrained call (and one retry) turning `request` into a TaskSpec; each
    call's usage goes to `on_usage` (so /cost counts it)."""
    schema = json.dumps(TaskSpec.model_json_schema())
    messages = [
        {"role": "system", "content": prompts.render("rewrite_system.md.j2", schema=schema)},
        {"role": "user", "content": prompts.render("rewrite_user.md.j2", request=request,
                                                   facts=facts.as_text())}]
    error = ""
    for _ in range(2):
        reply = Reply()
        for event in model.stream(messages, [], thinking=False,
                                  response_format=response_format()):
            reply.add(event)
        if reply.usage is not None:
            on_usage(reply.usage)
        try:
            return parse_spec(reply.text)
        except ValueError as exc:
            error = str(exc)
            messages += [{"role": "assistant", "content": reply.text},
                         {"role": "user", "content": prompts.render(
                             "rewrite_retry.md.j2", error=error).strip()}]
    raise RewriteFailed(f"the model's task spec was not valid twice ({error}).")


def parse_spec(text: str) -> TaskSpec:
    """A TaskSpec from the model's JSON (code fences tolerated), or ValueError saying why."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        return TaskSpec.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the answer'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ValueError(problems) from None


def task_message(request: str, spec: TaskSpec) -> str:
    """The task the agent receives: the request verbatim, then the reviewed spec."""
    bullets = lambda items: "\n".join(f"- {i}" for i in items)
    return prompts.render("task.md.j2", request=request, goal=spec.goal,
                          context=bullets(spec.context), constraints=bullets(spec.constraints),
                          acceptance_criteria=bullets(spec.acceptance_criteria),
                          deliverable=spec.deliverable).strip()


def gather_facts(root: Path, request: str, failing_output: str = "") -> RepoFacts:
    """What the repository says about itself: languages, commands, git state, named files."""
    files = _tracked_files(root)
    counts = Counter(_LANGUAGES[Path(f).suffix] for f in files if Path(f).suffix in _LANGUAGES)
    build, test = _commands(root)
    return RepoFacts(languages=[lang for lang, _ in counts.most_common(5)],
                     build_commands=build, test_commands=test, git_state=_git_state(root),
                     failing_output=failing_output[-2000:],
                     mentioned_files=_mentioned(request, files))


def _git(root: Path, *args: str) -> str:
    out = gitcmd.run(root, *args)
    return out.stdout if out.returncode == 0 else ""


def _tracked_files(root: Path) -> list[str]:
    return _git(root, "ls-files").splitlines()[:50_000]


def _git_state(root: Path) -> str:
    status = _git(root, "status", "--porcelain", "--branch").splitlines()
    if not status:
        return "not a git repository"
    changed = [line[3:] for line in status[1:]]
    head = _git(root, "log", "-1", "--format=%h %s").strip()
    text = f"{status[0].removeprefix('## ')}; last commit {head or '(none)'}"
    if changed:
        text += f"; uncommitted: {', '.join(changed[:10])}"
        text += f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    return text


def _commands(root: Path) -> tuple[list[str], list[str]]:
    build, test = [], []
    if (root / "pyproject.toml").is_file() or (root / "setup.py").is_file():
        build.append("pip install -e .")
    if any((root / f).exists() for f in ("pytest.ini", "conftest.py", "tests", "tox.ini")) or \
            "pytest" in _read(root / "pyproject.toml"):
        test.append("pytest")
    scripts = _package_scripts(root / "package.json")
    build += ["npm run build"] if "build" in scripts else []
    test += ["npm test"] if "test" in scripts else []
    makefile = _read(root / "Makefile")
    for target, bucket in (("build", build), ("all", build), ("test", test), ("check", test)):
        if re.search(rf"^{target}\s*:", makefile, re.M):
            bucket.append(f"make {target}")
    if (root / "Cargo.toml").is_file():
        build.append("cargo build"), test.append("cargo test")
    if (root / "go.mod").is_file():
        build.append("go build ./..."), test.append("go test ./...")
    return build, test


def _package_scripts(path: Path) -> dict:
    try:
        data = json.loads(_read(path) or "{}")
    except ValueError:
        return {}
    return data.get("scripts", {}) if isinstance(data, dict) else {}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _mentioned(request: str, files: list[str]) -> list[str]:
    """Tracked files the request names, by path or by file name."""
    by_name: dict[str, list[str]] = {}
    for f in files:
        by_name.setdefault(Path(f).name, []).append(f)
    found: list[str] = []
    for token in _PATHLIKE.findall(request):
        token = token.strip("./") if token.startswith("./") else token.rstrip(".")
        matches = [token] if token in files else by_name.get(token, [])
        found += [m for m in matches if m not in found]
    return found[:20]
