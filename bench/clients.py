"""Do the agents developers already use run on `flashcode serve`? Each client is installed in
a temp dir (npm for Codex CLI and Claude Code, pip for Aider into bench/out/, opencode with
--opencode), pointed at `flashcode serve` on a make-tiny checkpoint over loopback (with an API
key, so every client's way of sending it is exercised too), and given one non-interactive
prompt: `codex exec`, `claude -p`, `aider --message`; the official openai and anthropic SDKs
run in this process. The tiny model's text is gibberish; what must hold is the protocol. Its
output head is nudged so that replies end after tens of tokens (ends_replies; --raw: not).

  python bench/clients.py [--only codex,claude,aider,openai-sdk,anthropic-sdk] [--opencode]
                          [--timeout 900] [--max-tokens 512] [--raw] [--keep DIR] [--latest]

Prints a table: client, version, API, connected (a request got its 200), streamed (an SSE
reply), finished (the client ended its run by itself, exit 0), requests, last reply (how the
model's last reply ended: stop, tool_calls, or length when cut at max tokens), protocol errors
(4xx/5xx the server gave the client, and client lines that report a wire problem), and a note
(the exact error, when there is one). Slow on a CPU: Claude Code's first prompt is ~45k
tokens, Codex's ~22k, and the random model writes until it happens to stop.

A run (2 shared CPU cores, 2026-12-02, --opencode): every client connected, streamed and
finished with 0 protocol errors (Codex CLI 0.171.0, Claude Code 2.1.197, Aider 0.86.2, opencode
1.18.33, openai 3.57.0, anthropic 2.16.0). With --raw every reply runs to the limit, and Codex
CLI ("Incomplete response returned, reason: max_output_tokens") and Claude Code (retries, then
"response exceeded the 32000 output token maximum") end in an error, as they do for any reply
cut at its limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from aider_peer import AIDER, ensure_aider  # noqa: E402
from clients_serve import KEY, Serve  # noqa: E402

NPM = {"codex": "@openai/codex@0.171.0", "claude": "@anthropic-ai/claude-code@2.1.197",
       "opencode": "opencode-ai@1.18.33"}
PROMPT = "Reply with one short greeting."
# the lines where each client reports an error (its output also holds the model's gibberish,
# which must not count); an error about the reply's length is the model's, not the wire's
ERROR_LINE = {"codex": r"^ERROR:", "claude": r"^(API Error|Error:)",
              "aider": r"^(litellm\.\w+|openai\.\w+|Traceback|\w+Error:)",
              "opencode": r"^(Error|error:|\s*at )"}
LENGTH = re.compile(r"max_output_tokens|max_tokens|output token maximum", re.I)


@dataclass
class Row:
    client: str
    version: str = "?"
    api: str = ""
    requests: list[tuple] = field(default_factory=list)  # (method, path, status, note)
    finished: bool = False
    wire_errors: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def connected(self) -> bool:
        return any(r[2] == 200 for r in self.requests)

    @property
    def streamed(self) -> bool:
        return any(r[2] == 200 and "stream=True" in r[3] for r in self.requests)

    @property
    def protocol_errors(self) -> list[str]:
        bad = [f"{m} {p} {s} {n}" for m, p, s, n in self.requests if s >= 400]
        return bad + self.wire_errors

    @property
    def ended(self) -> str:
        """How the model's last reply ended, as the server logged it (stop, tool_calls, or
        length: cut at max_tokens)."""
        finishes = [re.search(r"finish=(\w+)", n) for *_, n in self.requests]
        return next((f.group(1) for f in reversed(finishes) if f), "-")


def npm_install(package: str, where: Path, latest: bool) -> Path:
    spec = package.rsplit("@", 1)[0] if latest else package
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(where), spec],
                   check=True, capture_output=True, text=True)
    return where / "node_modules" / ".bin"


def run(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | None, str]:
    """(exit code, None on a timeout; stdout and stderr together, also kept in cwd.out)."""
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        code, out = p.returncode, (p.stdout + p.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        code, out = None, ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
    cwd.with_suffix(".out").write_text(out)
    return code, out


def version_of(cmd: list[str], env: dict) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    found = re.search(r"\d+\.\d+\.\d+", out.stdout + out.stderr)
    return found.group(0) if found else "?"


def finish(row: Row, client: str, code: int | None, output: str, timeout: float) -> Row:
    """The run's outcome: finished on exit 0; error lines about the wire count against it,
    the others (the reply cut at its length) go to the note."""
    row.finished = code == 0
    errors = [ln.strip()[:200] for ln in output.splitlines()
              if re.match(ERROR_LINE[client], ln.strip())]
    row.wire_errors = [e for e in errors if not LENGTH.search(e)]
    notes = [e for e in errors if LENGTH.search(e)]
    if code is None:
        notes.append(f"no end within {timeout:g} s")
    elif code != 0 and not errors:
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        notes.append(f"exit {code}: {(lines or [''])[-1][:160]}")
    row.note = "; ".join(dict.fromkeys(notes))
    return row


# --- the clients ---------------------------------------------------------------------------

def codex(serve: Serve, work: Path, args) -> Row:
    bin_ = npm_install(NPM["codex"], work / "npm-codex", args.latest)
    home = work / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "tiny"\nmodel_provider = "flashcode"\n[model_providers.flashcode]\n'
        f'name = "flashcode"\nbase_url = "{serve.base}/v1"\nwire_api = "responses"\n'
        'env_key = "FLASHCODE_KEY"\n')
    env = {**os.environ, "CODEX_HOME": str(home), "FLASHCODE_KEY": KEY, "HOME": str(home)}
    row = Row("Codex CLI", version_of([str(bin_ / "codex"), "--version"], env),
              "Responses  /v1/responses")
    mark = len(serve.lines)
    code, out = run([str(bin_ / "codex"), "exec", "--skip-git-repo-check", PROMPT],
                    workdir(work, "codex"), env, args.timeout)
    row.requests = serve.requests_since(mark)
    return finish(row, "codex", code, out, args.timeout)


def claude(serve: Serve, work: Path, args) -> Row:
    bin_ = npm_install(NPM["claude"], work / "npm-claude", args.latest)
    home = work / "claude-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANTHROPIC_BASE_URL": serve.base,
           "ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_AUTOUPDATER": "1"}
    row = Row("Claude Code", version_of([str(bin_ / "claude"), "--version"], env),
              "Messages   /v1/messages")
    mark = len(serve.lines)
    code, out = run([str(bin_ / "claude"), "-p", PROMPT, "--model", "tiny",
                     "--output-format", "json"], workdir(work, "claude"), env, args.timeout)
    row.requests = serve.requests_since(mark)
    result = _last_json(out)  # with --output-format json, errors are in the result
    text = str(result.get("result", ""))
    row = finish(row, "claude", code, text if result.get("is_error") else "", args.timeout)
    if result.get("is_error") and not row.wire_errors:
        row.finished, row.note = False, f"is_error: {text[:160]}"
    if not result and code is not None:
        row.finished, row.note = False, f"no JSON result (exit {code}): {out.strip()[-160:]}"
    return row


def aider(serve: Serve, work: Path, args) -> Row:
    python = ensure_aider()
    home = work / "aider-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    row = Row("Aider", AIDER.split("==")[-1], "Chat       /v1/chat/completions")
    mark = len(serve.lines)
    code, out = run([str(python), "-m", "aider", "--message", PROMPT, "--model", "openai/tiny",
                     "--openai-api-base", f"{serve.base}/v1", "--openai-api-key", KEY,
                     "--no-git", "--yes-always", "--no-show-model-warnings",
                     "--no-check-update", "--no-analytics", "--no-pretty", "--stream",
                     "--map-tokens", "0"], workdir(work, "aider"), env, args.timeout)
    row.requests = serve.requests_since(mark)
    return finish(row, "aider", code, out, args.timeout)


def opencode(serve: Serve, work: Path, args) -> Row:
    bin_ = npm_install(NPM["opencode"], work / "npm-opencode", args.latest)
    where, home = workdir(work, "opencode"), work / "opencode-home"
    home.mkdir()
    (where / "opencode.json").write_text(json.dumps({"provider": {"flashcode": {
        "npm": "@ai-sdk/openai-compatible", "options": {"baseURL": f"{serve.base}/v1",
                                                        "apiKey": KEY},
        "models": {"tiny": {}}}}}))
    # models.dev is out of reach offline, and opencode reads its directory from $PWD
    env = {**os.environ, "HOME": str(home), "PWD": str(where),
           "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1"}
    row = Row("opencode", version_of([str(bin_ / "opencode"), "--version"], env),
              "Chat       /v1/chat/completions")
    mark = len(serve.lines)
    code, out = run([str(bin_ / "opencode"), "run", "--model", "flashcode/tiny", PROMPT],
                    where, env, args.timeout)
    row.requests = serve.requests_since(mark)
    return finish(row, "opencode", code, out, args.timeout)


def openai_sdk(serve: Serve, work: Path, args) -> Row:
    import openai

    client = openai.OpenAI(base_url=f"{serve.base}/v1", api_key=KEY, max_retries=0,
                           timeout=args.timeout)
    row = Row("openai SDK", openai.__version__, "Responses  /v1/responses")
    tool = {"type": "function", "name": "ping", "parameters": {"type": "object",
                                                               "properties": {}}}
    mark = len(serve.lines)
    try:
        with client.responses.stream(model="tiny", input=PROMPT, tools=[tool],
                                     tool_choice="required", max_output_tokens=400,
                                     reasoning={"effort": "none"}) as stream:
            kinds = [e.type for e in stream]
            final = stream.get_final_response()
        whole = client.responses.create(model="tiny", input=PROMPT, max_output_tokens=8,
                                        previous_response_id=final.id)
        row.finished = kinds[-1] == "response.completed" and whole.status in (
            "completed", "incomplete")
    except Exception as e:  # a wire problem is what this row is for
        row.wire_errors.append(f"{type(e).__name__}: {e}"[:200])
    row.requests = serve.requests_since(mark)
    return row


def anthropic_sdk(serve: Serve, work: Path, args) -> Row:
    import anthropic

    client = anthropic.Anthropic(base_url=serve.base, api_key=KEY, max_retries=0,
                                 timeout=args.timeout)
    row = Row("anthropic SDK", anthropic.__version__, "Messages   /v1/messages")
    tool = {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
    mark = len(serve.lines)
    try:
        with client.messages.stream(model="tiny", max_tokens=400, messages=[
                {"role": "user", "content": PROMPT}], tools=[tool],
                tool_choice={"type": "any"}) as stream:
            final = stream.get_final_message()
        with client.messages.stream(model="tiny", max_tokens=8, messages=[
                {"role": "user", "content": PROMPT}],
                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
            thought = stream.get_final_message()
        row.finished = final.stop_reason == "tool_use" and thought.content[0].type == "thinking"
    except Exception as e:
        row.wire_errors.append(f"{type(e).__name__}: {e}"[:200])
    row.requests = serve.requests_since(mark)
    return row


CLIENTS = {"codex": codex, "claude": claude, "aider": aider, "openai-sdk": openai_sdk,
           "anthropic-sdk": anthropic_sdk, "opencode": opencode}


def workdir(work: Path, name: str) -> Path:
    """An empty git repository for one client."""
    where = work / f"repo-{name}"
    where.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=where, check=True)
    return where


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}


def table(rows: list[Row]) -> str:
    yes = lambda b: "yes" if b else "no"
    head = ["client", "version", "API", "connected", "streamed", "finished", "requests",
            "last reply", "protocol errors"]
    body = [[r.client, r.version, r.api, yes(r.connected), yes(r.streamed), yes(r.finished),
             str(len(r.requests)), r.ended, str(len(r.protocol_errors))] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
    out = [line(head), line(["-" * w for w in widths]), *map(line, body)]
    for r in rows:
        for problem in [*r.protocol_errors, *([r.note] if r.note else [])]:
            out.append(f"  {r.client}: {problem}")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="codex,claude,aider,openai-sdk,anthropic-sdk",
                   help="comma-separated clients (default: all but opencode)")
    p.add_argument("--opencode", action="store_true", help="also run opencode (npm)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per client")
    p.add_argument("--max-tokens", type=int, default=512, metavar="N",
                   help="serve's --max-tokens-limit: Claude Code and opencode ask for 32,000 "
                   "tokens, which a random model on a CPU writes for longer than --timeout")
    p.add_argument("--raw", action="store_true",
                   help="keep make-tiny's head as it is (replies then run to --max-tokens)")
    p.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a temp dir)")
    p.add_argument("--latest", action="store_true", help="install the newest client versions")
    args = p.parse_args()
    names = args.only.split(",") + (["opencode"] if args.opencode else [])
    if any(n in ("codex", "claude", "opencode") for n in names) and not shutil.which("npm"):
        raise SystemExit("npm is needed for Codex CLI, Claude Code and opencode")
    work = Path(args.keep or tempfile.mkdtemp(prefix="flashcode-clients-"))
    work.mkdir(parents=True, exist_ok=True)
    serve, rows = Serve(work, args.max_tokens, 0.0 if args.raw else 8.0), []
    try:
        for name in names:
            t0 = time.monotonic()
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(CLIENTS[name](serve, work, args))
            print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        serve.close(work / "serve.log")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    return 0 if all(r.connected and r.finished and not r.protocol_errors for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
