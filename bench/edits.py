"""Edit-application benchmark: flashcode's `edit` against Aider's search/replace applier.

A corpus of edits is cut from real source files on this machine (the Python standard library,
C headers in /usr/include, npm's JavaScript). Each edit renames one identifier in a block of
lines, then the block is perturbed the way models err: indentation drift, trailing spaces, CRLF
files, curly quotes, a stale line (a context line as it read before someone changed it), an
elided middle (`...`). Both appliers get the same (file, old, new); the resulting bytes are
compared with the intended file: correct, refused (file unchanged) or wrongly applied.

    /work/main/.venv/bin/python bench/edits.py [--cases 540] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.aider_peer import OUT, ensure_aider  # noqa: E402
from tools.base import ToolContext, ToolError, call  # noqa: E402

KINDS = ["indentation", "trailing-spaces", "crlf", "curly-quotes", "stale-line",
         "elided-middle"]
WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{2,}\b")


@dataclass
class Case:
    id: int
    kind: str
    source: str
    suffix: str
    original: bytes
    old: str
    new: str
    expected: bytes


def source_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = [p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts]
    found += sorted(Path("/usr/include").glob("**/*.h"))
    found += sorted(Path("/usr/lib/node_modules").glob("**/*.js"))
    out = []
    for p in sorted(found):
        try:
            data = p.read_bytes()
            if 1000 < len(data) < 200_000 and b"\r" not in data and b"\0" not in data:
                data.decode("utf-8")
                out.append(p)
        except (OSError, UnicodeDecodeError):
            continue
    return out


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _pick_block(rng: random.Random, lines: list[str], text: str, length: int):
    for _ in range(30):
        i = rng.randrange(0, max(1, len(lines) - length))
        block = lines[i:i + length]
        if len(block) < length or not block[0].strip() or not block[-1].strip():
            continue
        if "\t" in "".join(block) or text.count("\n".join(block) + "\n") != 1:
            continue
        return i, block
    return None


def _rename(line: str, rng: random.Random) -> str | None:
    words = [m for m in WORD.finditer(line)]
    if not words:
        return None
    m = rng.choice(words)
    return line[:m.start()] + m.group() + "_edited" + line[m.end():]


def _edited(block: list[str], rng: random.Random, rows: list[int]) -> tuple[int, list[str]]:
    for _ in range(10):
        j = rng.choice(rows)
        changed = _rename(block[j], rng)
        if changed is not None:
            return j, block[:j] + [changed] + block[j + 1:]
    raise LookupError


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def make_case(rng: random.Random, cid: int, kind: str, path: Path) -> Case | None:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    length = rng.randint(10, 16) if kind == "elided-middle" else rng.randint(4, 8)
    picked = _pick_block(rng, lines, text, length)
    if picked is None:
        return None
    i, block = picked
    rows = ([0, 1, 2, length - 3, length - 2, length - 1] if kind == "elided-middle"
            else list(range(length)))
    try:
        j, new_block = _edited(block, rng, rows)
    except LookupError:
        return None
    expected = text.replace(_join(block), _join(new_block), 1)
    made = PERTURB[kind](rng, block, new_block, j)
    if made is None:
        return None
    old, new = made
    original = text.encode()
    if kind == "crlf":
        original, expected = original.replace(b"\n", b"\r\n"), expected.replace("\n", "\r\n")
    return Case(cid, kind, str(path), path.suffix, original, old, new, expected.encode())


def _p_indent(rng, block, new_block, j):
    delta = rng.choice([2, 4])
    least = min(len(_indent(x)) for x in block if x.strip())
    if least >= delta and rng.random() < 0.5:
        shift = lambda x: x[delta:] if x.strip() else x
    else:
        shift = lambda x: " " * delta + x if x.strip() else x
    return _join([shift(x) for x in block]), _join([shift(x) for x in new_block])


def _p_trailing(rng, block, new_block, j):
    rows = [k for k, x in enumerate(block) if x.strip()]
    marked = set(rng.sample(rows, max(1, len(rows) // 2)))
    old = [x + " " * rng.randint(1, 3) if k in marked else x for k, x in enumerate(block)]
    return _join(old), _join(new_block)


def _p_crlf(rng, block, new_block, j):
    return _join(block), _join(new_block)


def _curl(s: str) -> str:
    out, single, double = [], True, True
    for ch in s:
        if ch == "'":
            out.append("\u2018" if single else "\u2019")
            single = not single
        elif ch == '"':
            out.append("\u201c" if double else "\u201d")
            double = not double
        else:
            out.append(ch)
    return "".join(out)


def _p_curly(rng, block, new_block, j):
    if not any(q in x for x in block for q in "'\""):
        return None
    return _join([_curl(x) for x in block]), _join([_curl(x) for x in new_block])


def _p_stale(rng, block, new_block, j):
    rows = [k for k, x in enumerate(block) if k != j and WORD.search(x)]
    if not rows:
        return None
    k = rng.choice(rows)
    m = rng.choice(list(WORD.finditer(block[k])))
    stale = block[k][:m.start()] + m.group() + "Old" + block[k][m.end():]
    old = block[:k] + [stale] + block[k + 1:]
    new = new_block[:k] + [stale] + new_block[k + 1:]
    return _join(old), _join(new)


def _p_elided(rng, block, new_block, j):
    dots = _indent(block[3]) + "..."
    return (_join(block[:3] + [dots] + block[-3:]), _join(new_block[:3] + [dots] + new_block[-3:]))


PERTURB = {"indentation": _p_indent, "trailing-spaces": _p_trailing, "crlf": _p_crlf,
           "curly-quotes": _p_curly, "stale-line": _p_stale, "elided-middle": _p_elided}


def build_corpus(n: int, seed: int) -> list[Case]:
    rng, files, cases = random.Random(seed), source_files(), []
    per_kind = -(-n // len(KINDS))
    for kind in KINDS:
        made = 0
        while made < per_kind:
            case = make_case(rng, len(cases), kind, rng.choice(files))
            if case is not None:
                cases.append(case)
                made += 1
    return cases


def classify(result: bytes, case: Case) -> str:
    if result == case.expected:
        return "correct"
    return "refused" if result == case.original else "wrong"


def run_ours(cases: list[Case], work: Path) -> list[str]:
    ctx, out = ToolContext(work), []
    for c in cases:
        path = work / f"case{c.id}{c.suffix}"
        path.write_bytes(c.original)
        try:
            call("edit", {"path": path.name, "old": c.old, "new": c.new}, ctx)
        except ToolError:
            pass
        out.append(classify(path.read_bytes(), c))
    return out


def run_aider(cases: list[Case], work: Path) -> list[str]:
    python = ensure_aider()
    lines = []
    for c in cases:
        path = work / f"case{c.id}{c.suffix}"
        path.write_bytes(c.original)
        lines.append(json.dumps({"path": str(path), "old": c.old, "new": c.new}))
    helper = Path(__file__).resolve().parent / "aider_edit_apply.py"
    subprocess.run([str(python), str(helper)], input="\n".join(lines) + "\n", text=True,
                   capture_output=True, check=True)
    out = []
    for c in cases:
        result = (work / f"case{c.id}{c.suffix}").read_bytes()
        verdict = classify(result, c)
        if verdict == "wrong" and result == c.expected.replace(b"\r\n", b"\n"):
            verdict = "wrong-eol"  # the edit is right but every CRLF became LF
        out.append(verdict)
    return out


def report(cases: list[Case], ours: list[str], aider: list[str]) -> dict:
    rows = {}
    for kind in KINDS + ["total"]:
        idx = [i for i, c in enumerate(cases) if kind in (c.kind, "total")]
        rows[kind] = {"n": len(idx), "ours": Counter(ours[i] for i in idx),
                      "aider": Counter(aider[i] for i in idx)}
    print(f"{'perturbation':<16}{'n':>5}  {'ours: correct refused wrong':>28}"
          f"  {'aider: correct refused wrong':>29}")
    for kind, r in rows.items():
        o, a = r["ours"], r["aider"]
        a_wrong = a["wrong"] + a["wrong-eol"]
        print(f"{kind:<16}{r['n']:>5}  {o['correct']:>14}{o['refused']:>8}{o['wrong']:>6}"
              f"  {a['correct']:>15}{a['refused']:>8}{a_wrong:>6}")
    eol = rows["total"]["aider"]["wrong-eol"]
    if eol:
        print(f"(aider 'wrong' includes {eol} edits that were right but rewrote every CRLF line "
              "ending as LF)")
    total = rows["total"]
    ratio = total["ours"]["correct"] / max(total["aider"]["correct"], 1)
    print(f"\ncorrect, ours / aider: {total['ours']['correct']} / {total['aider']['correct']}"
          f" = {ratio:.2f}x;  wrongly applied: ours {total['ours']['wrong']}, "
          f"aider {total['aider']['wrong'] + eol}")
    return {k: {"n": v["n"], "ours": dict(v["ours"]), "aider": dict(v["aider"])}
            for k, v in rows.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=540)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cases = build_corpus(args.cases, args.seed)
    sources = len({c.source for c in cases})
    print(f"{len(cases)} edits from {sources} real source files (seed {args.seed})")
    work = OUT / "edits"
    shutil.rmtree(work, ignore_errors=True)
    (work / "ours").mkdir(parents=True)
    (work / "aider").mkdir()
    ours = run_ours(cases, work / "ours")
    aider = run_aider(cases, work / "aider")
    table = report(cases, ours, aider)
    (OUT / "edits.json").write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
