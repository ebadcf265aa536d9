"""Parse test runners' output into counts and failing tests: pytest, jest, mocha, node --test
(TAP), go test -v, cargo test. Each parser takes the whole output and returns a Summary, or None
when the output is not in its format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_FAILURE_CHARS = 2000  # output kept per failing test


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (test name, trimmed output)


def _trim(text: str) -> str:
    text = text.strip("\n")
    if len(text) <= MAX_FAILURE_CHARS:
        return text
    half = MAX_FAILURE_CHARS // 2
    return f"{text[:half]}\n[…]\n{text[-half:]}"


def _count(pattern: str, text: str) -> int:
    return sum(int(m) for m in re.findall(pattern, text, re.M))


def pytest_summary(out: str) -> Summary | None:
    final = [line for line in out.splitlines()
             if re.search(r"\d+ (passed|failed|errors?|skipped)\b", line)
             and re.search(r" in [\d.]+s", line)]
    if not final:
        return None
    line = final[-1]
    s = Summary(passed=_count(r"(\d+) passed", line), failed=_count(r"(\d+) failed", line),
                errors=_count(r"(\d+) errors?\b", line), skipped=_count(r"(\d+) skipped", line))
    sections = _pytest_sections(out)
    for name in re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M):
        short = name.split("::")[-1]
        body = sections.get(short) or sections.get(name.replace("::", ".")) or ""
        s.failures.append((name, _trim(body)))
    return s


def _pytest_sections(out: str) -> dict[str, str]:
    """'____ test_name ____' header -> the text up to the next header or '=== … ===' line."""
    parts = re.split(r"^(?:_{3,} (.+?) _{3,}|={3,} .* ={3,})$", out, flags=re.M)
    sections = {}
    for i in range(1, len(parts) - 1, 2):
        if parts[i] is not None:  # None: a '===' line, which only ends a section
            name = re.sub(r"^ERROR at (setup|teardown) of ", "", parts[i].strip())
            sections[name] = parts[i + 1]
    return sections


def jest_summary(out: str) -> Summary | None:
    m = re.search(r"^Tests:\s+(.*\d+ total)", out, re.M)
    if not m:
        return None
    line = m.group(1)
    s = Summary(passed=_count(r"(\d+) passed", line), failed=_count(r"(\d+) failed", line),
                skipped=_count(r"(\d+) skipped", line))
    blocks = re.split(r"^\s+● ", out, flags=re.M)[1:]
    s.failures = [(b.splitlines()[0].strip(), _trim("\n".join(b.splitlines()[1:])))
                  for b in blocks if not b.startswith("Console")]
    return s


def mocha_summary(out: str) -> Summary | None:
    m = re.search(r"^\s+(\d+) passing", out, re.M)
    if not m:
        return None
    s = Summary(passed=int(m.group(1)), failed=_count(r"^\s+(\d+) failing", out),
                skipped=_count(r"^\s+(\d+) pending", out))
    s.failures = [(name.strip(), "") for name in re.findall(r"^\s+\d+\) (.+)$", out, re.M)]
    return s


def tap_summary(out: str) -> Summary | None:
    if not re.search(r"^# pass \d+", out, re.M):
        return None
    s = Summary(passed=_count(r"^# pass (\d+)", out), failed=_count(r"^# fail (\d+)", out),
                skipped=_count(r"^# skipped (\d+)", out))
    for m in re.finditer(r"^\s*not ok \d+ - (.+)$\n((?:\s{2,}.*\n?)*)", out, re.M):
        s.failures.append((m.group(1).strip(), _trim(m.group(2))))
    return s


def go_summary(out: str) -> Summary | None:
    if not re.search(r"^(ok|FAIL|---|===|PASS)\b", out, re.M):
        return None
    s = Summary(passed=len(re.findall(r"^\s*--- PASS:", out, re.M)),
                failed=len(re.findall(r"^\s*--- FAIL:", out, re.M)),
                skipped=len(re.findall(r"^\s*--- SKIP:", out, re.M)))
    s.errors = len(re.findall(r"^FAIL\s+\S+\s+\[(build|setup) failed\]", out, re.M))
    for m in re.finditer(r"^=== RUN\s+(\S+)\n(.*?)^\s*--- FAIL: \1\b", out, re.M | re.S):
        s.failures.append((m.group(1), _trim(m.group(2))))
    return s


def cargo_summary(out: str) -> Summary | None:
    lines = re.findall(r"^test result: \w+\. (.*)$", out, re.M)
    if not lines:
        return None
    joined = "\n".join(lines)
    s = Summary(passed=_count(r"(\d+) passed", joined), failed=_count(r"(\d+) failed", joined),
                skipped=_count(r"(\d+) ignored", joined))
    for name in re.findall(r"^test (\S+) \.\.\. FAILED$", out, re.M):
        m = re.search(rf"^---- {re.escape(name)} stdout ----\n(.*?)(?=^----|^failures:)",
                      out, re.M | re.S)
        s.failures.append((name, _trim(m.group(1)) if m else ""))
    return s


PARSERS = {"pytest": [pytest_summary], "npm": [jest_summary, mocha_summary, tap_summary],
           "go": [go_summary], "cargo": [cargo_summary]}
ANY = [pytest_summary, jest_summary, cargo_summary, tap_summary, mocha_summary, go_summary]


def summarize(framework: str, out: str) -> Summary | None:
    for parser in PARSERS.get(framework, ANY):
        found = parser(out)
        if found is not None:
            return found
    return None
