"""Item: anyone who could reach `flashcode serve` could use the model. Now `--api-key KEY` (or
FLASHCODE_SERVE_API_KEY) makes every endpoint but /health ask for `Authorization: Bearer KEY`,
and serve refuses to listen beyond loopback without one (exit 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import openai
import pytest

from tests.conftest import REPO_ROOT, run_flashcode
from tests.security.conftest import HI, assert_openai_error, port_of, post, request

KEY = "sk-test-secret"


def get(port: int, path: str, auth: str | None = None):
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if auth is not None:
        head += f"Authorization: {auth}\r\n"
    return request(port, (head + "\r\n").encode("utf-8"))


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer wrong", f"Basic {KEY}",
                                  f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer \u00ff"])
def test_without_the_key_every_endpoint_says_401(serve, auth):
    port = port_of(serve(api_key=KEY))
    for path in ("/v1/models", "/models", "/nope"):
        status, body, head = get(port, path, auth)
        assert_openai_error(status, body, 401, "api key")
        assert b"www-authenticate: bearer" in head.lower()
    headers = {"Authorization": auth} if auth is not None else {}
    status, body, _ = post(port, {"messages": HI, "max_tokens": 2}, headers=headers)
    assert_openai_error(status, body, 401, "api key")
    assert body["error"]["code"] == "invalid_api_key"


def test_with_the_key_it_serves_and_health_needs_none(serve, engine):
    srv = serve(api_key=KEY)
    port = port_of(srv)
    status, body, _ = get(port, "/health")
    assert status == 200 and body == {"status": "ok"}
    status, body, _ = get(port, "/v1/models", f"Bearer {KEY}")
    assert status == 200 and body["data"][0]["id"] == "tiny"
    client = openai.OpenAI(base_url=srv.url, api_key=KEY, max_retries=0, timeout=120)
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=2)
    assert r.usage.completion_tokens <= 2
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url, api_key="wrong", max_retries=0).models.list()


def test_a_non_ascii_key_works_and_a_wrong_one_does_not_crash_the_compare(serve):
    port = port_of(serve(api_key="cl\u00e9"))
    assert get(port, "/v1/models", "Bearer cl\u00e9")[0] == 200  # sent as UTF-8
    assert get(port, "/v1/models", "Bearer cl\u00ea")[0] == 401


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False),
    ("192.168.1.7", False), ("10.0.0.1", False), ("example.com", False), ("::ffff:127.0.0.1",
                                                                         True),
])
def test_which_hosts_are_loopback(host, loopback):
    from engine.serve.auth import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.7"])
def test_serve_refuses_a_public_address_without_a_key(tmp_path, host):
    env = {k: v for k, v in os.environ.items() if k != "FLASHCODE_SERVE_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "--model",
                          str(tmp_path), "--host", host, "--port", "0"], cwd=REPO_ROOT,
                         env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "--api-key" in out.stderr and "Traceback" not in out.stderr


def test_an_empty_key_is_refused(tmp_path):
    out = run_flashcode("serve", "--model", str(tmp_path), "--api-key", "", "--port", "0")
    assert out.returncode == 2 and "--api-key" in out.stderr and "empty" in out.stderr


def test_serve_takes_the_key_and_the_default_cap_from_its_flags_and_env(tiny_ckpt):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
           "FLASHCODE_SERVE_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--model",
                             str(tiny_ckpt), "--port", "0", "--max-tokens-default", "3",
                             "--context-window", "2048"], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:(\d+)/v1)", line)
        assert found, line + proc.stderr.read()
        port = int(found.group(2))
        status, body, _ = get(port, "/v1/models")
        assert_openai_error(status, body, 401, "api key")
        client = openai.OpenAI(base_url=found.group(1), api_key=KEY, max_retries=0,
                               timeout=120)
        r = client.chat.completions.create(model="tiny", messages=HI, temperature=1.0)
        assert r.usage.completion_tokens <= 3
    finally:
        proc.kill()
        proc.wait()
    assert KEY not in proc.stderr.read()  # the key is never logged
