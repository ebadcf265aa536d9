"""Reading and writing text files the way they were: encoding, BOM, line endings, mode.

`decode(data)` -> Decoded(text with "\n" newlines, encoding, bom, newline, final_newline);
`Decoded.encode(text)` turns edited LF text back into bytes in the file's own form, so an edit
never changes a file's CRLF endings, its Latin-1 bytes or its missing final newline.
"""

from __future__ import annotations

import codecs
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def read_text(path: Path, what: str) -> Decoded:
    """The decoded text of a file, or a ToolError that says why it cannot be text."""
    if path.is_dir():
        raise ToolError(f"'{what}' is a directory. Use `list` to see what it holds.")
    if not path.exists():
        raise ToolError(f"'{what}' does not exist. Use `list` or `glob` to find the right path.")
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise ToolError(f"'{what}' is {size / 2**20:.0f} MiB, too big to load as text. Use "
                        "`search` to find the part you need, or `shell` with head/tail/sed.")
    data = path.read_bytes()
    if is_binary(data):
        raise ToolError(f"'{what}' is a binary file ({len(data)} bytes); it cannot be read or "
                        "edited as text.")
    return decode(data)


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, keeping the file's mode. A
    symlink at `path` is replaced by the file (callers that mean its target resolve first)."""
    mode = path.stat().st_mode & 0o7777 if path.exists() and not path.is_symlink() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
