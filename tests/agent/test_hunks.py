"""hunks.apply(reverse=True): reverting chosen hunks of changes already in the working tree."""

from __future__ import annotations

import subprocess

import pytest

from agent import hunks


def _diff(repo) -> str:
    subprocess.run(["git", "add", "-N", "."], cwd=repo, check=True)  # show new files too
    out = subprocess.run(["git", "diff", "--no-color"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    subprocess.run(["git", "reset", "-q"], cwd=repo, check=True)
    return out


def test_reverse_reverts_only_the_selected_hunks(git_repo):
    lines = [f"row {i}" for i in range(1, 41)]
    (git_repo / "t.txt").write_text("\n".join(lines) + "\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "t"], cwd=git_repo, check=True)
    lines[0], lines[35] = "row 1 edited", "row 36 edited"
    (git_repo / "t.txt").write_text("\n".join(lines) + "\n")
    (git_repo / "new.txt").write_text("new\n")
    files = hunks.parse(_diff(git_repo))
    by_path = {f.path: i for i, f in enumerate(files)}
    t, new = by_path["t.txt"], by_path["new.txt"]
    assert len(files[t].hunks) == 2
    hunks.apply(git_repo, hunks.select(files, {(t, 1), (new, 0)}), reverse=True)
    text = (git_repo / "t.txt").read_text().splitlines()
    assert text[0] == "row 1 edited" and text[35] == "row 36"
    assert not (git_repo / "new.txt").exists()


def test_reverse_that_no_longer_applies_changes_nothing(git_repo):
    (git_repo / "README.md").write_text("changed\n")
    files = hunks.parse(_diff(git_repo))
    (git_repo / "README.md").write_text("changed again\n")
    with pytest.raises(hunks.HunkError, match="do not revert"):
        hunks.apply(git_repo, hunks.select(files, {(0, 0)}), reverse=True)
    assert (git_repo / "README.md").read_text() == "changed again\n"
