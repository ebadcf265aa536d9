"""Edit-application benchmark: flashcode's `edit` against Aider's search/replace applier.

A corpus of edits is cut from real source files on this machine (the Python standard library,
C headers in /usr/include, npm's JavaScript). Each edit renames one identifier in a block of
lines, then the block is perturbed the way models err: indentation drift, trailing spaces, CRLF
files, curly quotes, a stale line (a context line as it read before someone changed it), an
elided middle (`...`); and (issue 20, 16-17) `old` running on into the next line's indentation
while `new` ends at the line's end, one line quoted without its indentation with a line added
after it (written from there), a blank line of the file missing from `old`, a blank line added
to `old`, tabs written as spaces, indentation shifted left with lines that could go no further
left at column 0. Both appliers get the same (file, old, new); the resulting bytes are compared
with the intended file: correct, refused (file unchanged) or wrongly applied.

    /work/main/.venv/bin/python bench/edits.py [--cases 720] [--seed 0] [--kinds a,b]
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
         "elided-middle", "ws-tail", "mid-line", "blank-missing", "blank-extra",
         "tabs-as-spaces", "indent-clamped"]
# kinds whose block must have a blank line inside, or a line indented with tabs
NEEDS = {"blank-missing": lambda b: any(not x.strip() for x in b),
         "tabs-as-spaces": lambda b: any(x.startswith("\t") for x in b)}
COMMENT = {".py": "# edited", ".h": "/* edited */", ".js": "// edited"}
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


def _pick_block(rng: random.Random, lines: list[str], text: str, length: int, kind: str = ""):
    need = NEEDS.get(kind, lambda b: "\t" not in "".join(b))
    for _ in range(60 if kind in NEEDS else 30):
        i = rng.randrange(0, max(1, len(lines) - length))
        block = lines[i:i + length]
        if len(block) < length or not block[0].strip() or not block[-1].strip():
            continue
        if not need(block) or text.count("\n".join(block) + "\n") != 1:
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
    if kind == "mid-line":
        made = _mid_line(rng, lines, text, path.suffix)
        if made is None:
            return None
        old, new, expected = made
        return Case(cid, kind, str(path), path.suffix, text.encode(), old, new, expected.encode())
    length = rng.randint(10, 16) if kind == "elided-middle" else rng.randint(4, 8)
    picked = _pick_block(rng, lines, text, length, kind)
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
    made = PERTURB[kind](rng, block, new_block, j, lines[i + length:])
    if made is None:
        return None
    old, new = made
    original = text.encode()
    if kind == "crlf":
        original, expected = original.replace(b"\n", b"\r\n"), expected.replace("\n", "\r\n")
    return Case(cid, kind, str(path), path.suffix, original, old, new, expected.encode())


def _p_indent(rng, block, new_block, j, after):
    delta = rng.choice([2, 4])
    least = min(len(_indent(x)) for x in block if x.strip())
    if least >= delta and rng.random() < 0.5:
        shift = lambda x: x[delta:] if x.strip() else x
    else:
        shift = lambda x: " " * delta + x if x.strip() else x
    return _join([shift(x) for x in block]), _join([shift(x) for x in new_block])


def _p_trailing(rng, block, new_block, j, after):
    rows = [k for k, x in enumerate(block) if x.strip()]
    marked = set(rng.sample(rows, max(1, len(rows) // 2)))
    old = [x + " " * rng.randint(1, 3) if k in marked else x for k, x in enumerate(block)]
    return _join(old), _join(new_block)


def _p_crlf(rng, block, new_block, j, after):
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


def _p_curly(rng, block, new_block, j, after):
    if not any(q in x for x in block for q in "'\""):
        return None
    return _join([_curl(x) for x in block]), _join([_curl(x) for x in new_block])


def _p_stale(rng, block, new_block, j, after):
    rows = [k for k, x in enumerate(block) if k != j and WORD.search(x)]
    if not rows:
        return None
    k = rng.choice(rows)
    m = rng.choice(list(WORD.finditer(block[k])))
    stale = block[k][:m.start()] + m.group() + "Old" + block[k][m.end():]
    old = block[:k] + [stale] + block[k + 1:]
    new = new_block[:k] + [stale] + new_block[k + 1:]
    return _join(old), _join(new)


def _p_elided(rng, block, new_block, j, after):
    dots = _indent(block[3]) + "..."
    return (_join(block[:3] + [dots] + block[-3:]), _join(new_block[:3] + [dots] + new_block[-3:]))


def _p_ws_tail(rng, block, new_block, j, after):
    """16a: `old` runs on past its last line break into the next line's indentation (or, before
    a blank line, some spaces); `new` ends at the line's end."""
    if not after:
        return None
    tail = _indent(after[0]) if after[0].strip() else " " * rng.choice([2, 4])
    return (_join(block) + tail, _join(new_block)) if tail else None


def _mid_line(rng, lines, text, suffix):
    """16b: one indented line quoted from after its indentation, renamed, and a line added after
    it, written from there (at column 0): (old, new, the file intended)."""
    for _ in range(30):
        i = rng.randrange(len(lines))
        line = lines[i]
        indent, body = _indent(line), line.strip()
        if not indent or not WORD.search(body) or text.count(body + "\n") != 1:
            continue
        renamed = _rename(body, rng)
        comment = COMMENT.get(suffix, "# edited")
        expected = "\n".join(lines[:i] + [indent + renamed, indent + comment] + lines[i + 1:])
        return body + "\n", renamed + "\n" + comment + "\n", expected
    return None


def _p_blank_missing(rng, block, new_block, j, after):
    """17: `old` (and `new`, written from the same view) lacks one of the block's blank lines."""
    k = rng.choice([k for k, x in enumerate(block) if not x.strip()])
    return _join(block[:k] + block[k + 1:]), _join(new_block[:k] + new_block[k + 1:])


def _p_blank_extra(rng, block, new_block, j, after):
    """17: `old` and `new` have a blank line the file lacks, between two lines with text."""
    gaps = [k for k in range(1, len(block)) if block[k - 1].strip() and block[k].strip()]
    if not gaps:
        return None
    k = rng.choice(gaps)
    return _join(block[:k] + [""] + block[k:]), _join(new_block[:k] + [""] + new_block[k:])


def _p_tabs(rng, block, new_block, j, after):
    """17: the indentation's tabs written as spaces, at 2, 4 or 8 columns to a tab."""
    width = rng.choice([2, 4, 8])
    spaced = lambda x: _indent(x).expandtabs(width) + x[len(_indent(x)):]
    return _join([spaced(x) for x in block]), _join([spaced(x) for x in new_block])


def _p_clamped(rng, block, new_block, j, after):
    """17: indentation shifted left by 4 or 8 columns, the lines indented less than that stopping
    at column 0 (a `#ifdef` in a struct, a docstring's lines, a label)."""
    widths = [len(_indent(x)) for x in block if x.strip()]
    shifts = [d for d in (4, 8) if min(widths) < d <= max(widths)]
    if not shifts:
        return None
    d = rng.choice(shifts)
    shift = lambda x: x[d:] if x.startswith(" " * d) else x.lstrip(" ")
    return _join([shift(x) for x in block]), _join([shift(x) for x in new_block])


PERTURB = {"indentation": _p_indent, "trailing-spaces": _p_trailing, "crlf": _p_crlf,
           "curly-quotes": _p_curly, "stale-line": _p_stale, "elided-middle": _p_elided,
           "ws-tail": _p_ws_tail, "blank-missing": _p_blank_missing,
           "blank-extra": _p_blank_extra, "tabs-as-spaces": _p_tabs,
           "indent-clamped": _p_clamped}


def build_corpus(n: int, seed: int, kinds: list[str]) -> list[Case]:
    rng, files, cases = random.Random(seed), source_files(), []
    tabbed = [p for p in files if b"\n\t" in p.read_bytes()]
    per_kind = -(-n // len(kinds))
    for kind in kinds:
        made = 0
        while made < per_kind:
            pool = tabbed if kind == "tabs-as-spaces" else files
            case = make_case(rng, len(cases), kind, rng.choice(pool))
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


def report(cases: list[Case], ours: list[str], aider: list[str], kinds: list[str]) -> dict:
    rows = {}
    for kind in kinds + ["total"]:
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
    ap.add_argument("--cases", type=int, default=720, help="edits in all, split over the kinds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, of: " +
                    ", ".join(KINDS))
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    cases = build_corpus(args.cases, args.seed, kinds)
    sources = len({c.source for c in cases})
    print(f"{len(cases)} edits from {sources} real source files (seed {args.seed})")
    work = OUT / "edits"
    shutil.rmtree(work, ignore_errors=True)
    (work / "ours").mkdir(parents=True)
    (work / "aider").mkdir()
    ours = run_ours(cases, work / "ours")
    aider = run_aider(cases, work / "aider")
    table = report(cases, ours, aider, kinds)
    (OUT / "edits.json").write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
