"""`flashcode doctor` reports this machine accurately and says how to fix each gap."""

from __future__ import annotations

import http.server
import json
import threading
from contextlib import contextmanager

import pytest

from agent import exitcodes
from agent.backends.check import backend_problem, check_backend
from agent.cli.doctor import collect
from agent.config import Settings
from tests.conftest import run_flashcode


def test_doctor_here_reports_python_torch_and_no_model(isolated_env, tmp_path):
    out = run_flashcode("-C", str(tmp_path), "doctor", "--json", env=isolated_env)
    assert out.returncode == exitcodes.BACKEND_UNAVAILABLE, out.stderr
    report = {c["name"]: c for c in json.loads(out.stdout)}
    import torch

    assert report["python"]["status"] == "ok"
    assert report["torch"]["detail"] == torch.__version__
    if not torch.cuda.is_available():
        assert report["cuda"]["status"] == "warn" and "CPU" in report["cuda"]["detail"]
    assert report["model"]["status"] == "missing"
    assert "--endpoint" in report["model"]["fix"]
    assert report["git"]["status"] == "ok"


def test_doctor_text_report_shows_fix_lines(isolated_env, tmp_path):
    out = run_flashcode("-C", str(tmp_path), "doctor", env=isolated_env)
    assert "fix:" in out.stdout and "checks pass" in out.stdout


def test_checkpoint_directory_is_checked(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert check_backend(Settings(model=str(ckpt))).status == "missing"
    (ckpt / "config.json").write_text("{}")
    found = check_backend(Settings(model=str(ckpt)))
    assert found.status == "missing" and "safetensors" in found.detail
    (ckpt / "model-00001-of-00001.safetensors").write_bytes(b"\0" * 1024)
    assert check_backend(Settings(model=str(ckpt))).status == "ok"
    assert backend_problem(Settings(model=str(ckpt))) is None


def test_replay_file_is_checked(tmp_path):
    assert check_backend(Settings(model=f"replay:{tmp_path}/nope.jsonl")).status == "missing"
    (tmp_path / "s.jsonl").write_text("")
    assert check_backend(Settings(model=f"replay:{tmp_path}/s.jsonl")).status == "ok"


@contextmanager
def fake_endpoint(status: int, body: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_that_serves_the_model(isolated_env):
    with fake_endpoint(200, {"data": [{"id": "deepseek-v4-flash"}]}) as url:
        found = check_backend(Settings(endpoint=url, model_name="deepseek-v4-flash"))
    assert found.status == "ok" and "deepseek-v4-flash" in found.detail


def test_endpoint_that_does_not_list_the_model(isolated_env):
    with fake_endpoint(200, {"data": [{"id": "other"}]}) as url:
        found = check_backend(Settings(endpoint=url, model_name="deepseek-v4-flash"))
    assert found.status == "warn" and "other" in found.detail


def test_endpoint_that_refuses_the_key(isolated_env):
    with fake_endpoint(401, {"error": "bad key"}) as url:
        found = check_backend(Settings(endpoint=url, api_key_env="MY_KEY"))
    assert found.status == "missing" and "MY_KEY" in found.fix


def test_unreachable_endpoint():
    found = check_backend(Settings(endpoint="http://127.0.0.1:9/v1"))
    assert found.status == "missing" and "unreachable" in found.detail


@pytest.mark.parametrize("name", ["textual", "tokenizers", "openai", "tree-sitter-language-pack"])
def test_installed_packages_are_reported_ok(name):
    checks = {c.name: c for c in collect(Settings())}
    assert checks[name].status == "ok"
