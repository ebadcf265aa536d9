"""A command's output, capped: its spill file never grows past a cap (`yes` for three seconds
used to write 850 MB). The command writes into a pipe; a thread copies the first half of the
cap to the file as it comes and keeps a rolling tail of the rest in memory; at the end the
tail follows a marker saying how many bytes between them were dropped. So the file holds the
head and the tail, at most `cap` bytes in all.
"""

from __future__ import annotations

import fcntl
import os
import select
import threading
from typing import BinaryIO

CHUNK = 1 << 20  # bytes read at a time
MARKER_ROOM = 64  # bytes kept free for the marker line


def marker(dropped: int) -> bytes:
    return f"\n[... {dropped} bytes dropped ...]\n".encode()


class Capture:
    """Start it, give `write_fd` to the command as stdout and stderr (then `close_writer()`),
    and `finish()` once the command and everything it started are gone."""

    def __init__(self, out: BinaryIO, cap: int):
        self.out, self.head_left = out, max(cap // 2, 0)
        self.tail_cap = max(cap - self.head_left - MARKER_ROOM, 0)
        self.tail, self.dropped = bytearray(), 0
        self._read_fd, self.write_fd = os.pipe()
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # bigger reads, fewer wake-ups (Linux)
            try:
                fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, CHUNK)
            except OSError:
                pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="capture", daemon=True)
        self._thread.start()

    def close_writer(self) -> None:
        """Close flashcode's copy of the pipe's write end (the command holds its own)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def finish(self, wait_s: float) -> int:
        """Read what is left (for at most `wait_s`: a process that escaped could hold the pipe
        open for ever), write the tail, close the pipe. The bytes dropped from the middle."""
        self.close_writer()
        self._thread.join(wait_s)
        self._stop.set()
        self._thread.join()
        if self.dropped:
            self.out.write(marker(self.dropped))
        self.out.write(self.tail)
        self.out.flush()
        return self.dropped

    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                if not select.select([self._read_fd], [], [], 0.1)[0]:
                    continue
                chunk = os.read(self._read_fd, CHUNK)
                if not chunk:
                    break
                self._take(chunk)
        finally:
            os.close(self._read_fd)

    def _take(self, chunk: bytes) -> None:
        if self.head_left:
            head = chunk[:self.head_left]
            self.out.write(head)
            self.head_left -= len(head)
            chunk = chunk[len(head):]
        self.tail += chunk
        extra = len(self.tail) - self.tail_cap
        if extra > 0:  # drop from the front: cheap on a bytearray
            del self.tail[:extra]
            self.dropped += extra
