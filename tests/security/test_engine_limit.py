"""Item: the process aborted (exit 134, "terminate called without an active exception") when
the agent's time limit ran out mid-reply on the in-process engine, and likewise on Ctrl-C in
`flashcode serve` mid-generation. Cause: a thread was still inside the model (torch) when the
interpreter finalized; Python ends such daemon threads with pthread_exit, whose unwinding hits
a noexcept C++ frame in torch and calls std::terminate. The engine now stops the reply at its
next token and waits for it before exit (Engine.close, run at exit)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from agent.exitcodes import NOT_FIXED
from tests.conftest import REPO_ROOT, run_flashcode
from tests.security.conftest import HI


@pytest.mark.slow
def test_the_time_limit_mid_reply_exits_with_the_limits_code(tiny_ckpt, git_repo,
                                                             isolated_env):
    # one second is over before the ~8k-token system prompt is read: the limit fires at the
    # reply's first token, with the engine still generating on the stream's thread
    env = {**isolated_env, "OMP_NUM_THREADS": "1", "FLASHCODE_CONTEXT_WINDOW": "9000",
           "FLASHCODE_MAX_SECONDS": "1"}
    out = run_flashcode("exec", "--model", str(tiny_ckpt), "--json", "hi", cwd=git_repo,
                        timeout=300, env=env)
    assert out.returncode == NOT_FIXED, (out.returncode, out.stderr[-2000:])
    assert "terminate called" not in out.stderr and "Traceback" not in out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["type"] == "result" and result["status"] == "limit"
    assert "mid-reply" in result["message"] and result["exit_code"] == NOT_FIXED


@pytest.mark.slow
def test_ctrl_c_mid_generation_stops_serve_cleanly(tiny_ckpt):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--model",
                             str(tiny_ckpt), "--port", "0", "--context-window", "4096"],
                            cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        found = re.search(r"127\.0\.0\.1:(\d+)/v1", proc.stdout.readline())
        assert found, proc.stderr.read()
        body = json.dumps({"messages": HI, "max_tokens": 3000, "temperature": 1.0,
                           "seed": 0, "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=60)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        while seen.count(b"data: ") < 3:  # the role chunk, then tokens: generating now
            chunk = s.recv(65536)
            assert chunk, seen
            seen += chunk
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 0, (code, err[-2000:])
    assert "terminate called" not in err and "Traceback" not in err


def test_close_stops_a_reply_at_its_next_token_and_refuses_new_ones(tiny_ckpt):
    from engine.api import Engine, EngineClosed

    engine = Engine.load(tiny_ckpt, context_window=2048)
    started, outcome = threading.Event(), []

    def consume():
        try:
            for _ in engine.stream(HI, max_tokens=1500, temperature=1.0, seed=0):
                started.set()
            outcome.append("finished")
        except EngineClosed:
            outcome.append("closed")

    t = threading.Thread(target=consume)
    t.start()
    assert started.wait(60)
    engine.close()
    t.join(timeout=60)
    assert outcome == ["closed"]
    with pytest.raises(EngineClosed):
        next(engine.stream(HI, max_tokens=2))
