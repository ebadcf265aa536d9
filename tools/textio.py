"""Reading and writing text files the way they were: encoding, BOM, line endings, mode.

`decode(data)` -> Decoded(text with "\n" newlines, encoding, bom, newline, final_newline);
`Decoded.encode(text)` turns edited LF text back into bytes in the file's own form, so an edit
never changes a file's CRLF endings, its Latin-1 bytes or its missing final newline.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tools import nofollow
from tools.base import ToolError

MAX_TEXT_BYTES = 32 * 1024 * 1024  # bigger files are data or logs: search or slice them instead
SNIFF = 8192  # bytes looked at to call a file binary (same idea as git's NUL check)
_BOMS = [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be")]


@dataclass(frozen=True)
class Decoded:
    text: str  # newlines normalised to "\n"
    encoding: str  # "utf-8", "latin-1", "utf-16-le", ...
    bom: bytes  # b"" or the BOM the file started with
    newline: str  # "\n" or "\r\n": the file's dominant line ending
    stamp: tuple[int, int] | None = None  # read_text: (mtime_ns, size) of what was read

    def encode(self, text: str) -> bytes:
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        try:
            return self.bom + text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise ToolError(f"The new text has characters that {self.encoding} cannot store "
                            f"({exc.object[exc.start:exc.end]!r}); this file is {self.encoding}, "
                            "so use characters it can represent.") from None


def is_binary(data: bytes) -> bool:
    head = data[:SNIFF]
    if any(head.startswith(bom) for bom, _ in _BOMS[1:]):
        return False
    return b"\0" in head


def decode(data: bytes) -> Decoded:
    """Decode bytes, guessing the encoding: BOM, then UTF-8, then Latin-1 (never fails)."""
    bom, encoding = b"", None
    for mark, name in _BOMS:
        if data.startswith(mark):
            bom, encoding = mark, name
            break
    body = data[len(bom):]
    if encoding is None:
        try:
            body.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "latin-1"  # every byte is a character, so the round trip is exact
    text = body.decode(encoding)
    crlf = text.count("\r\n")
    newline = "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"
    return Decoded(text.replace("\r\n", "\n"), encoding, bom, newline)


Stamp = tuple[int, int]  # (mtime_ns, size): how `edit` tells a file changed since it was read


def stamp_of(status: os.stat_result) -> Stamp:
    return (status.st_mtime_ns, status.st_size)


def read_file(path: Path, what: str, limit: int | None = None) -> tuple[bytes, Stamp]:
    """The bytes of the regular file at `path` and its stamp, or a ToolError saying why not.
    Opened without following a link swapped in since `path` was checked (tools.nofollow), and
    without blocking on a FIFO; over `limit` bytes is refused before reading."""
    try:
        fd = nofollow.open_file(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ToolError(f"'{what}' does not exist. Use `list` or `glob` to find the right "
                        "path.") from None
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise ToolError(f"'{what}' is a directory. Use `list` to see what it holds.")
        if not stat.S_ISREG(status.st_mode):
            raise ToolError(f"'{what}' is not a regular file (a FIFO, socket or device); it "
                            "cannot be read or edited as text.")
        if limit is not None and status.st_size > limit:
            raise ToolError(f"'{what}' is {status.st_size / 2**20:.0f} MiB, too big to load as "
                            "text. Use `search` to find the part you need, or `shell` with "
                            "head/tail/sed.")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read(), stamp_of(status)


def read_text(path: Path, what: str) -> Decoded:
    """The decoded text of a file (with its stamp), or a ToolError that says why it cannot
    be text."""
    data, stamp = read_file(path, what, MAX_TEXT_BYTES)
    if is_binary(data):
        raise ToolError(f"'{what}' is a binary file ({len(data)} bytes); it cannot be read or "
                        "edited as text.")
    return dataclasses.replace(decode(data), stamp=stamp)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> Stamp:
    """Write via a temp file in the same directory and rename, keeping the file's mode (or
    giving `mode`); the new file's stamp. A symlink at `path` is replaced by the file (callers
    that mean its target resolve first). Directories are walked without following links
    (tools.nofollow), so a directory swapped for a link since `path` was checked is refused."""
    if mode is None:
        old = nofollow.lstat(path)
        regular = old is not None and stat.S_ISREG(old.st_mode)
        mode = stat.S_IMODE(old.st_mode) if regular else 0o666 & ~_umask()
    return stamp_of(nofollow.write(path, data, mode))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
