"""Shared fixtures. Later issues add ScriptedModel, tiny checkpoints and temp git repos here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# the official conformance data (V4 encoding vectors, Flash config and tensor names, Codex
# apply_patch scenarios), carried in the repository with each folder's source and licence
CONFORMANCE = Path(os.environ.get("FLASHCODE_CONFORMANCE", REPO_ROOT / "tests" / "data" /
                                  "conformance"))


def run_flashcode(*args: str, cwd: Path | None = None, env: dict | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, the way a user does."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd or REPO_ROOT,
                          env={**full_env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own XDG cache (saved KV states, repo maps): a state saved by one
    test, or by a user's real runs, must never warm another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def isolated_env(tmp_path, monkeypatch) -> dict:
    """An environment with an empty XDG config dir and no FLASHCODE_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHCODE_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    for k in list(os.environ):
        if k.startswith("FLASHCODE_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    return env


@pytest.fixture
def git_repo(tmp_path) -> Path:
    """A real git repository with one commit, in a temp dir."""
    repo = tmp_path / "repo"
    repo.mkdir()
    def git(*a):
        subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "test@example.com")
    git("config", "user.name", "Test")
    (repo / "README.md").write_text("hello\n")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    return repo
