"""Opening a checked path without following a link that appeared after the check.

`ToolContext.resolve` checks a path (links resolved, inside the repository, outside git
directories) and returns it with no link left in it. Between that check and the open, another
process can swap a directory on the way for a link leading out of the repository; opening by
name would follow it. So here every component is opened with O_NOFOLLOW relative to the one
before (openat), starting at "/": a link anywhere on the way fails the open instead of leading
elsewhere, and files are read, created, renamed and removed through the descriptor of the
directory walked that way. Paths given here must be absolute with no link in them, as
`resolve` returns them (its follow=False form may end in a link: the link itself is acted on).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.base import ToolError

# O_PATH (Linux) needs only search permission on a directory, as a lookup by name does
_DIR_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
_SWAPPED = {errno.ELOOP, errno.ENOTDIR, errno.EMLINK}  # EMLINK: FreeBSD's O_NOFOLLOW error


class Swapped(ToolError):
    """A component of a checked path is a link (or no longer a directory) now."""


def _swapped(path: Path) -> Swapped:
    return Swapped(f"'{path}' changed while the tool was opening it: a directory on the way (or "
                   "the file itself) was replaced, perhaps by a symlink, so nothing was read or "
                   "written there. Check the path, then try again.")


@contextmanager
def directory(path: Path, made: list[Path] | None = None) -> Iterator[int]:
    """A descriptor of the directory `path`, walked from "/" one component at a time, never
    through a link. With `made`, missing directories are created and appended to it."""
    if not path.is_absolute():
        raise ValueError(f"{path} is not absolute")
    fd = os.open("/", _DIR_FLAGS)
    try:
        for depth, name in enumerate(path.parts[1:], 2):
            old, fd = fd, _step(fd, name, Path(*path.parts[:depth]), made)
            os.close(old)
        yield fd
    finally:
        os.close(fd)


def _step(fd: int, name: str, here: Path, made: list[Path] | None) -> int:
    """Open `name` in the directory `fd`; the new descriptor."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if made is None:
                raise
        try:
            os.mkdir(name, dir_fd=fd)
            made.append(here)
        except FileExistsError:  # made meanwhile by someone else: opened below, not followed
            pass
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in _SWAPPED:
            raise _swapped(here) from None
        raise


def open_file(path: Path, flags: int, mode: int = 0o666) -> int:
    """os.open of the file at `path`, the last component not followed either."""
    with directory(path.parent) as parent:
        try:
            return os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as exc:
            if exc.errno in _SWAPPED:
                raise _swapped(path) from None
            raise


def lstat(path: Path) -> os.stat_result | None:
    """The status of `path` itself (a link is not followed), or None when nothing is there
    (nor, perhaps, the directory it would be in)."""
    try:
        with directory(path.parent) as parent:
            return os.stat(path.name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def readlink(path: Path) -> str:
    with directory(path.parent) as parent:
        return os.readlink(path.name, dir_fd=parent)


def write(path: Path, data: bytes, mode: int) -> os.stat_result:
    """Replace `path` by a file holding `data` with `mode`, atomically: a temp file in the
    same directory, renamed over it (a link at `path` is replaced, not written through).
    Missing directories are made. The new file's status, as written."""
    with directory(path.parent, made=[]) as parent:
        tmp = f".{path.name[:100]}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), mode)
                status = os.fstat(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            _unlink_quietly(tmp, parent)
            raise
    return status


def symlink(text: str, path: Path) -> None:
    """Make `path` a link holding `text`, replacing what is there by rename (never half made).
    Missing directories are made."""
    with directory(path.parent, made=[]) as parent:
        tmp = f".{path.name[:100]}.{secrets.token_hex(4)}.link.tmp"
        os.symlink(text, tmp, dir_fd=parent)
        try:
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            _unlink_quietly(tmp, parent)
            raise


def unlink(path: Path, missing_ok: bool = True) -> None:
    """Remove the file or link at `path` (a link goes itself; what it names stays)."""
    try:
        with directory(path.parent) as parent:
            os.unlink(path.name, dir_fd=parent)
    except FileNotFoundError:
        if not missing_ok:
            raise


def rmdir(path: Path) -> None:
    with directory(path.parent) as parent:
        os.rmdir(path.name, dir_fd=parent)


def _unlink_quietly(name: str, parent: int) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass
