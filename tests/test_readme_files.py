"""README.md's file tree ("## Files") matches the repository: every path it lists is tracked
by git, and every product file (agent/, engine/, tools/, prompts/, bench/, scripts/, .ci/) is
listed, by its path or by a `*` pattern."""

from __future__ import annotations

import subprocess
from fnmatch import fnmatchcase

import pytest

from tests.conftest import REPO_ROOT

PRODUCT = ("agent/", "engine/", "tools/", "prompts/", "bench/", "scripts/", ".ci/")


def listed() -> list[str]:
    """The first word of each line of the fenced block under '## Files' (an indented line
    continues the one before)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Files\n", 1)[1]
    block = section.split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines()[1:]
            if line.strip() and not line[0].isspace()]


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout (an installed copy has no README tree to check)")
    return out.stdout.splitlines()


def test_every_listed_path_is_in_the_repository():
    files = tracked()
    missing = [p for p in listed() if not any(fnmatchcase(f, p) for f in files)]
    assert not missing, f"README lists paths that are not tracked: {missing}"


def test_every_product_file_is_listed():
    patterns = listed()
    unlisted = [f for f in tracked() if f.startswith(PRODUCT)
                and not any(fnmatchcase(f, p) for p in patterns)]
    assert not unlisted, f"README's file tree does not list: {unlisted}"
