"""Importing the tools does nothing heavy: no GitPython (it runs `git version`), numpy or
tree-sitter until a tool runs, and never torch, the engine or the UI."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

CHECK = """
import sys
from tools.base import all_tools
all_tools()
from tools.specs import tool_specs
tool_specs()
heavy = {"git", "numpy", "tree_sitter", "tree_sitter_language_pack", "torch", "textual",
         "engine", "agent"}
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_importing_tools_is_light():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
