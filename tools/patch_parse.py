"""Parse a patch into file operations: the Codex `*** Begin Patch` envelope, or a plain unified
diff as `git diff` writes it. Both become the same list of AddOp / DeleteOp / UpdateOp.

Envelope grammar (see ../shared/conformance/apply-patch/README.md):
    *** Begin Patch
    *** Add File: path      then lines "+text"
    *** Delete File: path
    *** Update File: path   [*** Move to: path]  then chunks: "@@ [scope]", " ctx", "-old",
                            "+new", "*** End of File"
    *** End Patch
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.base import ToolError


class PatchParseError(ToolError):
    """The patch text is malformed; nothing was changed."""


@dataclass
class Chunk:
    scope: str | None = None  # "@@ def f():" -> the line to find first
    old: list[str] = field(default_factory=list)  # context and "-" lines, in order
    new: list[str] = field(default_factory=list)  # context and "+" lines, in order
    eof: bool = False  # the old lines must end at the end of the file
    hint: int | None = None  # unified diffs: 1-based line where `old` starts


@dataclass
class AddOp:
    path: str
    content: str
    link: bool = False  # unified diffs: "new file mode 120000", content is the link's text


@dataclass
class DeleteOp:
    path: str


@dataclass
class UpdateOp:
    path: str
    move_to: str | None = None
    chunks: list[Chunk] = field(default_factory=list)
    final_newline: bool = True  # unified diffs can say "\ No newline at end of file"
    link: bool = False  # unified diffs: mode 120000, the chunks change the link's text


Op = AddOp | DeleteOp | UpdateOp
_HEREDOC = re.compile(r"^(?:\S+\s+)?<<-?\s*(['\"]?)EOF\1\s*$")


def parse(text: str) -> list[Op]:
    """Operations of an envelope patch or a unified diff, or PatchParseError."""
    stripped = text.strip()
    first = stripped.split("\n", 1)[0].strip()
    if first == "*** Begin Patch" or _HEREDOC.match(first):
        return parse_envelope(stripped)
    if re.search(r"^(diff --git |--- |\+\+\+ )", stripped, re.M):
        return parse_unified(text)
    raise PatchParseError("The patch must start with '*** Begin Patch' (and end with "
                          "'*** End Patch'), or be a unified diff with '---'/'+++' headers.")


def parse_envelope(text: str) -> list[Op]:
    lines = text.strip().split("\n")
    if _HEREDOC.match(lines[0].strip()) and len(lines) >= 4 and lines[-1].strip().endswith("EOF"):
        lines = [x for x in "\n".join(lines[1:-1]).strip().split("\n")]
    if lines[0].strip() != "*** Begin Patch":
        raise PatchParseError("The first line of the patch must be '*** Begin Patch'.")
    if lines[-1].strip() != "*** End Patch":
        raise PatchParseError("The last line of the patch must be '*** End Patch'.")
    body, ops, i = [x.rstrip("\r") for x in lines[1:-1]], [], 0
    while i < len(body):
        op, i = _parse_op(body, i)
        ops.append(op)
    if not ops:
        raise PatchParseError("The patch has no file operation, so no files were modified. Add "
                              "'*** Add File:', '*** Delete File:' or '*** Update File:' sections.")
    return ops


def _parse_op(body: list[str], i: int) -> tuple[Op, int]:
    header = body[i].strip()
    if header.startswith("*** Add File: "):
        path, i, content = header[len("*** Add File: "):].strip(), i + 1, []
        while i < len(body) and body[i].startswith("+"):
            content.append(body[i][1:] + "\n")
            i += 1
        return AddOp(path, "".join(content)), i
    if header.startswith("*** Delete File: "):
        return DeleteOp(header[len("*** Delete File: "):].strip()), i + 1
    if header.startswith("*** Update File: "):
        op = UpdateOp(header[len("*** Update File: "):].strip())
        i += 1
        if i < len(body) and body[i].strip().startswith("*** Move to: "):
            op.move_to = body[i].strip()[len("*** Move to: "):].strip()
            i += 1
        i = _parse_chunks(body, i, op)
        return op, i
    raise PatchParseError(f"Line {i + 2}: '{body[i]}' is not a valid hunk header. Expected "
                          "'*** Add File: PATH', '*** Delete File: PATH' or "
                          "'*** Update File: PATH'.")


def _parse_chunks(body: list[str], i: int, op: UpdateOp) -> int:
    chunk: Chunk | None = None
    while i < len(body):
        line = body[i]
        if line.strip() == "*** End of File" and chunk is not None:
            chunk.eof, chunk = True, None
        elif line.startswith("*"):
            break
        elif line.startswith("@@"):
            chunk = Chunk(scope=line[2:].strip() or None)
            op.chunks.append(chunk)
        elif chunk is None and not line.strip():
            pass  # blank lines between chunks
        elif line[:1] in (" ", "-", "+", ""):
            if chunk is None:
                chunk = Chunk()
                op.chunks.append(chunk)
            text = line[1:]
            if line[:1] in (" ", ""):
                chunk.old.append(text)
                chunk.new.append(text)
            else:
                (chunk.old if line[0] == "-" else chunk.new).append(text)
        else:
            raise PatchParseError(f"In the update of '{op.path}': unexpected line '{line}'. "
                                  "Chunk lines start with ' ', '-', '+' or '@@'.")
        i += 1
    if not op.chunks or all(not c.old and not c.new for c in op.chunks):
        raise PatchParseError(f"'*** Update File: {op.path}' has no chunk: add '@@' and the "
                              "lines to change (' ' context, '-' old, '+' new).")
    return i


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _strip_prefix(path: str) -> str | None:
    path = path.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    return path[2:] if path[:2] in ("a/", "b/") else path


@dataclass
class _FileDiff:
    old: str | None = None
    new: str | None = None
    chunks: list[Chunk] = field(default_factory=list)
    new_final_newline: bool = True
    rename: tuple[str, str] | None = None
    created: bool = False  # "new file mode": an empty new file has no ---/+++ lines
    deleted: bool = False
    headers: bool = False  # its ---/+++ lines were seen
    link: bool = False  # git's mode 120000: the "file" is a symlink and its text the target


def parse_unified(text: str) -> list[Op]:
    """Files of a unified diff (`git diff`, `diff -u`) as operations."""
    lines, files, i = text.split("\n"), [], 0
    current: _FileDiff | None = None
    while i < len(lines):
        line = lines[i].rstrip("\r")
        if line.startswith("diff --git "):
            current = _FileDiff()
            files.append(current)
            m = re.match(r"^diff --git (\S+) (\S+)$", line)
            if m:
                current.old, current.new = _strip_prefix(m.group(1)), _strip_prefix(m.group(2))
        elif line.startswith("new file mode") and current:
            current.created, current.link = True, line.endswith(" 120000")
        elif line.startswith("deleted file mode") and current:
            current.deleted = True
        elif line.startswith("index ") and line.endswith(" 120000") and current:
            current.link = True
        elif line.startswith("rename from ") and current:
            current.rename = (line[12:], current.rename[1] if current.rename else "")
        elif line.startswith("rename to ") and current and current.rename:
            current.rename = (current.rename[0], line[10:])
        elif line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            raise PatchParseError("Binary diffs are not supported; change binary files another "
                                  "way.")
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if current is None or current.chunks or current.headers:
                current = _FileDiff()
                files.append(current)
            current.old, current.new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            current.headers = True
            i += 1
        elif line.startswith("@@") and current is not None:
            i = _parse_hunk(lines, i, current)
            continue
        i += 1
    return [_to_op(f) for f in files
            if f.chunks or f.rename or f.created or f.deleted or f.old != f.new]


def _parse_hunk(lines: list[str], i: int, fd: _FileDiff) -> int:
    m = _HUNK.match(lines[i])
    if not m:
        raise PatchParseError(f"Line {i + 1}: bad hunk header '{lines[i]}'; expected "
                              "'@@ -START,COUNT +START,COUNT @@'.")
    old_left = int(m.group(2)) if m.group(2) is not None else 1
    new_left = int(m.group(4)) if m.group(4) is not None else 1
    chunk = Chunk(hint=int(m.group(1)))
    fd.chunks.append(chunk)
    i += 1
    last = " "
    while i < len(lines) and (old_left > 0 or new_left > 0 or lines[i].startswith("\\")):
        line = lines[i].rstrip("\r")
        tag, body = (line[:1] or " "), line[1:]
        if tag == "\\":
            if last in "+ ":
                fd.new_final_newline = False
        elif tag == " ":
            chunk.old.append(body)
            chunk.new.append(body)
            old_left, new_left = old_left - 1, new_left - 1
        elif tag == "-":
            chunk.old.append(body)
            old_left -= 1
        elif tag == "+":
            chunk.new.append(body)
            new_left -= 1
        else:
            raise PatchParseError(f"Line {i + 1}: '{line}' inside a hunk; hunk lines start with "
                                  "' ', '-' or '+', and the header counts must match them.")
        last = tag if tag != "\\" else last
        i += 1
    if old_left > 0 or new_left > 0:
        raise PatchParseError("A hunk ends before the line counts in its '@@' header are used "
                              "up; the diff is truncated or its counts are wrong.")
    return i


def _to_op(fd: _FileDiff) -> Op:
    if fd.created and fd.new is not None:
        fd.old = None
    if fd.deleted and fd.old is not None:
        return DeleteOp(fd.old)
    if fd.old is None and fd.new is not None:
        content = "\n".join(line for c in fd.chunks for line in c.new)
        return AddOp(fd.new, content + ("\n" if fd.new_final_newline and content else ""),
                     fd.link)
    if fd.new is None and fd.old is not None:
        return DeleteOp(fd.old)
    src = fd.rename[0] if fd.rename else fd.old
    dst = fd.rename[1] if fd.rename else fd.new
    if src is None or dst is None:
        raise PatchParseError("A file in the diff has no '---'/'+++' header naming it.")
    return UpdateOp(src, dst if dst != src else None, fd.chunks, fd.new_final_newline,
                    fd.link and bool(fd.chunks))
