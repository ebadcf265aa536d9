"""Bounded, seeded fuzzing of apply_patch and of path handling.

Valid patch envelopes (conformance-style: add, delete, update with scopes and end-of-file
chunks, moves, several operations, CRLF, a unified diff, plus the conformance scenarios'
own patches) are mutated (lines dropped, duplicated, swapped; NUL bytes, long names, `..`,
`.git/`, paths through files, unicode, CRLF, random bytes) and applied to a small repository
holding links and a git directory, next to an outside directory with a canary. After each:
a ToolError leaves every byte as it was; a success changes exactly what its own `changes`
list reports, never outside the repository or in `.git`; nothing else is ever raised.
Random path strings go through ToolContext.resolve and the read, edit and list tools the
same way.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE
from tools.base import ToolContext, ToolError, call

SEED, PATCH_CASES, PATH_CASES = 20240611, 1000, 320
CANARY = "CANARY-outside"
FILES = {
    "a.txt": b"one\ntwo\nthree\nfour\nfive\n",
    "crlf.txt": b"alpha\r\nbeta\r\ngamma\r\n",
    "sub/c.py": b"class A:\n    def f(self):\n        return 1\n\nclass B:\n"
                b"    def f(self):\n        return 1\n",
    "sub/deep/d.txt": b"deep\n",
    "uni/ü.txt": "grüße\n".encode(),
    "latin1.txt": "caf\xe9\n".encode("latin-1"),
    "noeol.txt": b"no newline",
}
LINKS = {"link": "a.txt", "dirlink": "sub", "sub/up": "../a.txt"}


def is_git_name(name: str) -> bool:
    """The test's own idea of a git directory name (independent of the code under test)."""
    kept = "".join(ch for ch in name if ch not in "\u200c\u200d\u202e\ufeff")
    return kept.rstrip(". ").lower() in {".git", "git~1"}


def _env(*ops: str) -> str:
    return "*** Begin Patch\n" + "".join(ops) + "*** End Patch"


SEEDS = [
    _env("*** Add File: new.txt\n+hello\n+world\n"),
    _env("*** Delete File: a.txt\n"),
    _env("*** Update File: a.txt\n@@\n one\n-two\n+TWO\n three\n"),
    _env("*** Update File: a.txt\n@@\n-two\n+2\n@@\n-four\n+4\n"),
    _env("*** Update File: a.txt\n*** Move to: moved/a.txt\n@@\n-one\n+uno\n"),
    _env("*** Update File: crlf.txt\n beta\n-gamma\n+delta\n"),
    _env("*** Update File: sub/c.py\n@@ class B:\n     def f(self):\n-        return 1\n"
         "+        return 2\n"),
    _env("*** Update File: a.txt\n@@\n-five\n+5\n*** End of File\n"),
    _env("*** Update File: noeol.txt\n@@\n+added first\n"),
    _env("*** Add File: sub/deep/e.txt\n+e\n", "*** Delete File: sub/deep/d.txt\n",
         "*** Update File: link\n@@\n-three\n+3\n"),
    _env("*** Update File: uni/ü.txt\n-grüße\n+grüsse\n"),
    _env("*** Update File: dirlink/up\n*** Move to: up2\n@@\n one\n"),
    _env("*** Delete File: link\n", "*** Add File: link\n+now a file\n"),
    _env("*** Update File: latin1.txt\n-café\n+cafe\n"),
    "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+deux\n three\n",
    "diff --git a/a.txt b/b.txt\nsimilarity index 90%\nrename from a.txt\nrename to b.txt\n",
]
BAD_NAMES = ["../escape.txt", "../outside/f.txt", ".git/config", ".GIT/hooks/pre-commit",
             "x/../.git/info/attributes", "a.txt/child.txt", "n" * 300, "d/" * 2100 + "x",
             "nul\0name.txt", "bad\udc80\ud800.txt", "/etc/passwd", "dirlink/../../out",
             "sub/deep", ".", "", "link/x", "über/ñ/文字.txt", "sp ace.txt", "git~1/config"]


def _conformance_seeds() -> list[str]:
    root = CONFORMANCE / "apply-patch" / "scenarios"
    if not root.is_dir():
        return []
    return [(p / "patch.txt").read_text() for p in sorted(root.iterdir())
            if (p / "patch.txt").is_file()]


def _mutate(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        lines = lines or [""]
        kind, i = rng.randrange(11), rng.randrange(len(lines))
        if kind == 0 and len(lines) > 1:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[i % len(lines)])
        elif kind == 2 and len(lines) > 1:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3:
            at = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:at] + "\0" + lines[i][at:]
        elif kind in (4, 5):  # swap a path for a bad one
            lines = _swap_path(rng, lines)
        elif kind == 6:
            lines[i] += "".join(chr(rng.choice([0x301, 0x202E, 0xFEFF, 0x200D, 0xD800, 0x1F600,
                                                0xE9, 0x3000, 0x85, 0x2028])) for _ in range(3))
        elif kind == 7:
            return "\r\n".join(lines)
        elif kind == 8:
            lines[i] += bytes(rng.randrange(256) for _ in range(8)).decode("latin-1")
        elif kind == 9:
            lines[i] = rng.choice(["+", "-", " ", "@@", "*** End of File", "*** Move to: b.txt",
                                   "*** Add File: ", "*** Update File: a.txt"]) + lines[i]
        else:
            lines = lines[:i]
    return "\n".join(lines)


def _swap_path(rng: random.Random, lines: list[str]) -> list[str]:
    headers = [k for k, line in enumerate(lines)
               if line.startswith(("*** Add File: ", "*** Delete File: ", "*** Update File: ",
                                   "*** Move to: ", "--- a/", "+++ b/"))]
    if not headers:
        return lines
    k = rng.choice(headers)
    head = lines[k][:lines[k].index(":") + 2] if ":" in lines[k] else lines[k][:6]
    return lines[:k] + [head + rng.choice(BAD_NAMES)] + lines[k + 1:]


def _build(base: Path) -> Path:
    """base/repo (files, links, a .git directory) and base/outside (a canary)."""
    repo, out = base / "repo", base / "outside"
    for rel, data in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
    for rel, target in LINKS.items():
        os.symlink(target, repo / rel)
    (repo / ".git" / "hooks").mkdir(parents=True)
    (repo / ".git" / "config").write_text("[core]\n\tbare = false\n")
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out.mkdir()
    (out / "f.txt").write_text(CANARY + "\n")
    os.symlink(out, repo / "outlink")
    return repo


def _snapshot(base: Path) -> dict[str, str]:
    """Every file, link and directory under base: content hash, link text, or 'dir'."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(base).as_posix()
            if p.is_symlink():
                found[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _reported(result) -> set[str]:
    """Paths (relative to base) a successful patch says it touched, and their directories."""
    paths = set()
    for c in result.changes:
        for p in (c.path, c.moved_to, c.link_to if c.action == "update" else None):
            if p:
                paths.add(f"repo/{p}")
    return paths


def _expected(result) -> dict[str, bool]:
    """Whether each path a patch reports is there afterwards, the operations taken in order."""
    there: dict[str, bool] = {}
    for c in result.changes:
        there[c.path] = c.action != "delete" and not (c.action == "move" and c.moved_to)
        if c.moved_to:
            there[c.moved_to] = True
    return there


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _check_success(result, before, after) -> str | None:
    changed = _changed(before, after)
    files = {k for k in changed if after.get(k, before.get(k)) != "dir"}
    extra = files - _reported(result)
    dirs = {k for k in changed - files}
    stray = [d for d in dirs if not any(r.startswith(d + "/") for r in _reported(result))]
    bad = [k for k in changed if not k.startswith("repo/")
           or any(is_git_name(part) for part in k.split("/"))]
    for rel, present in _expected(result).items():
        if present != (f"repo/{rel}" in after):
            return f"reported {rel} {'present' if present else 'gone'}, it is not"
    if extra or stray or bad:
        return f"unreported changes {sorted(extra)[:3]} dirs {stray[:3]} forbidden {bad[:3]}"
    return None


def test_mutated_patches_apply_exactly_or_change_nothing(tmp_path):
    rng = random.Random(SEED)
    pristine = tmp_path / "pristine"
    _build(pristine)
    base = tmp_path / "work"
    shutil.copytree(pristine, base, symlinks=True)
    seeds, problems, counts = SEEDS + _conformance_seeds(), [], {"ok": 0, "refused": 0}
    for n in range(PATCH_CASES):
        patch = _mutate(rng, rng.choice(seeds)) if n >= len(seeds) else seeds[n]
        before = _snapshot(base)
        try:
            result = call("apply_patch", {"patch": patch}, ToolContext(base / "repo"))
        except ToolError:
            counts["refused"] += 1
            if _snapshot(base) != before:
                problems.append((n, "a refused patch changed the tree", patch[:200]))
            continue
        except Exception as exc:  # noqa: BLE001 - every other exception is a finding
            problems.append((n, f"{type(exc).__name__}: {exc}"[:200], patch[:200]))
            continue
        counts["ok"] += 1
        wrong = _check_success(result, before, _snapshot(base))
        if wrong:
            problems.append((n, wrong, patch[:200]))
        shutil.rmtree(base)
        shutil.copytree(pristine, base, symlinks=True)
    assert problems == [], f"{len(problems)} of {PATCH_CASES}: {problems[:3]}"
    assert counts["ok"] >= 30 and counts["refused"] >= 200, counts
    print(f"apply_patch fuzz: {counts}")


PATH_PARTS = ["a.txt", "sub", "deep", "d.txt", "..", ".", ".git", ".GIT", ".Git.", "git~1",
              "config", "link", "dirlink", "outlink", "up", "f.txt", "", "ü", "uni", "\0", "x",
              "n" * 256, "a.txt", "*", "~", "\u202e", "\udc80", " ", "\\", "..."]


def _random_path(rng: random.Random, outside: Path) -> str:
    parts = [rng.choice(PATH_PARTS) for _ in range(rng.randint(1, 6))]
    text = "/".join(parts)
    roll = rng.random()
    if roll < 0.1:
        return str(outside / rng.choice(["f.txt", "", ".."]))
    if roll < 0.2:
        return "/" + text
    if roll < 0.3:
        return text + bytes(rng.randrange(256) for _ in range(4)).decode("latin-1")
    return text


def test_random_paths_never_reach_outside_or_git(tmp_path):
    rng = random.Random(SEED + 1)
    base = tmp_path / "base"
    repo = _build(base)
    outside_before, git_before = _snapshot(base / "outside"), _snapshot(repo / ".git")
    ctx, problems, seen = ToolContext(repo, sandbox="off"), [], set()
    while len(seen) < PATH_CASES:
        path = _random_path(rng, base / "outside")
        if path in seen:
            continue
        seen.add(path)
        problems += _path_problems(ctx, repo, path)
        ctx.read_stamps.clear()
    assert _snapshot(base / "outside") == outside_before
    assert _snapshot(repo / ".git") == git_before
    assert problems == [], problems[:5]


def _path_problems(ctx: ToolContext, repo: Path, path: str) -> list[str]:
    problems = []
    try:
        resolved = ctx.resolve(path)
        rel = resolved.relative_to(repo.resolve())  # ValueError: outside
        if any(is_git_name(p) for p in rel.parts):
            problems.append(f"resolve({path!r}) -> {rel} in a git dir")
    except ToolError:
        pass
    except Exception as exc:  # noqa: BLE001
        problems.append(f"resolve({path!r}): {type(exc).__name__}: {exc}")
    for name, args in [("read", {"path": path}), ("list", {"path": path, "depth": 3}),
                       ("edit", {"path": path, "old": "o", "new": "0"})]:
        try:
            result = call(name, args, ctx)
        except ToolError:
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}({path!r}): {type(exc).__name__}: {exc}"[:200])
            continue
        shown = result.model_dump_json()
        if CANARY in shown or any(is_git_name(p) for p in shown.replace('"', "/").split("/")):
            problems.append(f"{name}({path!r}) showed {shown[:120]}")
    return problems


@pytest.mark.parametrize("patch", SEEDS)
def test_every_seed_applies_cleanly(tmp_path, patch):
    """The seeds themselves are valid, so mutations start from patches that work."""
    repo = _build(tmp_path)
    call("apply_patch", {"patch": patch}, ToolContext(repo))
