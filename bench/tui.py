"""The app's responsiveness, measured on a real pseudo-terminal, against a bare Textual app.

    python bench/tui.py [--idle-seconds 10] [--chunks 2000]

For flashcode (the real entry point with a scripted model: tests/tui/scripted_main.py) and
for a peer (a bare Textual app: one TextArea, one Static), it reports:
  - time to interactive: process start → the input's placeholder drawn on the terminal;
  - idle CPU: % of one core used over --idle-seconds with nothing happening (from /proc);
and for flashcode only:
  - streaming: time from Enter to the last word of a --chunks-delta answer on screen;
  - paced streaming: an answer arriving at --rate tokens/s for five seconds: when its last
    word is on screen (5 s is ideal) and the CPU the app used meanwhile.
Ratios are flashcode / peer. Linux only (/proc, pty).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[P\]X^_].*?(?:\x1b\\|\x07)|\x1b.", re.S)

PEER = """
from textual.app import App
from textual.widgets import Static, TextArea
class Peer(App):
    def compose(self):
        yield Static("transcript")
        area = TextArea(placeholder="Ask, or /help")
        area.cursor_blink = False
        yield area
Peer().run()
"""


class Terminal:
    """A child process on a pty of a fixed size; its output is read (and kept) by a thread."""

    def __init__(self, argv: list[str], env: dict, cwd: Path, cols: int = 100, rows: int = 30):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=cwd, start_new_session=True)
        os.close(slave)
        self.master, self.raw = master, bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw += data

    def text(self) -> str:
        with self._lock:
            return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def wait_for(self, needle: str, timeout: float = 30.0) -> float:
        """Seconds since start when `needle` appeared in the (escape-stripped) output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return time.monotonic() - self.started
            time.sleep(0.005)
        raise TimeoutError(f"{needle!r} never appeared")

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def idle_cpu(self, seconds: float) -> float:
        """% of one core over `seconds` (after a settling second)."""
        time.sleep(1.0)
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return 100 * (self.cpu_seconds() - c0) / (time.monotonic() - t0)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def _env(tmp: Path) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("FLASHCODE_")}
    return {**keep, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
            "COLUMNS": "100", "LINES": "30"}


def _repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "README.md").write_text("bench\n")
    return repo


def bench_flashcode(tmp: Path, idle_s: float, chunks: int, rate: float) -> dict:
    words = [f"w{i}" for i in range(chunks)]
    paced = [f"p{i}" for i in range(int(rate * 5))]  # five seconds of tokens at `rate`/s
    script = tmp / "script.json"
    script.write_text(json.dumps([
        {"stream": " ".join(words) + " THE-END", "chunks": chunks},
        {"stream": " ".join(paced) + " PACED-END", "chunks": len(paced), "delay": 1 / rate}]))
    argv = [sys.executable, "-m", "tests.tui.scripted_main", str(script), "--endpoint",
            "http://127.0.0.1:9/v1", "--model-name", "scripted", "--no-rewrite",
            "-C", str(_repo(tmp))]
    term = Terminal(argv, _env(tmp), ROOT)
    try:
        tti = term.wait_for("or /help")
        idle = term.idle_cpu(idle_s)
        t0 = time.monotonic()
        term.send("stream please\r")
        term.wait_for("THE-END", timeout=120)
        stream = time.monotonic() - t0
        idle_after = term.idle_cpu(min(idle_s, 5.0))
        c0, t0 = term.cpu_seconds(), time.monotonic()
        term.send("paced please\r")
        term.wait_for("PACED-END", timeout=120)
        paced_s = time.monotonic() - t0
        paced_cpu = 100 * (term.cpu_seconds() - c0) / paced_s
    finally:
        term.close()
    return {"tti_s": tti, "idle_cpu_pct": idle, "stream_s": stream,
            "idle_after_stream_pct": idle_after, "paced_s": paced_s, "paced_cpu_pct": paced_cpu}


def bench_peer(tmp: Path, idle_s: float) -> dict:
    term = Terminal([sys.executable, "-c", PEER], _env(tmp), tmp)
    try:
        tti = term.wait_for("or /help")
        idle = term.idle_cpu(idle_s)
    finally:
        term.close()
    return {"tti_s": tti, "idle_cpu_pct": idle}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--chunks", type=int, default=2000, help="deltas in the streamed answer")
    ap.add_argument("--rate", type=float, default=100.0,
                    help="tokens per second of the paced answer (five seconds of it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "peer").mkdir()
        peer = bench_peer(tmp / "peer", args.idle_seconds)
        ours = bench_flashcode(tmp, args.idle_seconds, args.chunks, args.rate)
    print(f"time to interactive   flashcode {ours['tti_s']:.2f} s   bare textual "
          f"{peer['tti_s']:.2f} s   ratio {ours['tti_s'] / peer['tti_s']:.2f}")
    print(f"idle CPU over {args.idle_seconds:.0f} s  flashcode {ours['idle_cpu_pct']:.2f}% "
          f"of a core   bare textual {peer['idle_cpu_pct']:.2f}%")
    print(f"streaming {args.chunks} deltas: on screen in {ours['stream_s']:.2f} s "
          f"({args.chunks / ours['stream_s']:.0f} deltas/s); idle afterwards "
          f"{ours['idle_after_stream_pct']:.2f}% of a core")
    print(f"paced answer, {args.rate:.0f} tok/s for 5 s: on screen {ours['paced_s']:.2f} s after "
          f"Enter (ideal 5.00), {ours['paced_cpu_pct']:.1f}% of a core while streaming")
    return 0


if __name__ == "__main__":
    sys.exit(main())
