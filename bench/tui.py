"""The app's responsiveness, measured on a real pseudo-terminal, against a bare Textual app.

    python bench/tui.py [--idle-seconds 10] [--chunks 2000]

For flashcode (the real entry point with a scripted model: tests/tui/scripted_main.py) and
for a peer (a bare Textual app: one TextArea, one Static), it reports:
  - time to interactive: process start → the input's placeholder drawn on the terminal;
  - idle CPU: % of one core used over --idle-seconds with nothing happening (from /proc);
and for flashcode only:
  - streaming: time from Enter to the last word of a --chunks-delta answer on screen (the
    scripted model sends it all at once);
  - paced streaming: an answer arriving at --rate tokens/s for five seconds: when its last
    word is on screen (5 s is ideal) and the CPU the app used meanwhile.
Ratios are flashcode / peer. Needs tmux (the screen is read with capture-pane); Linux (/proc).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_sessions = itertools.count()

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
    """A child process in a tmux pane of a fixed size; the rendered screen is read back with
    capture-pane (what a user sees, however the app chose to redraw)."""

    def __init__(self, argv: list[str], env: dict, cwd: Path, cols: int = 100, rows: int = 30):
        self.socket = f"flashcode-bench-{os.getpid()}-{next(_sessions)}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"cd {shlex.quote(str(cwd))} && exec env {exports} {shlex.join(argv)}"
        self.started = time.monotonic()
        self._tmux("new-session", "-d", "-s", "b", "-x", str(cols), "-y", str(rows), command)
        self.pid = int(self._tmux("display-message", "-p", "-t", "b", "#{pane_pid}"))

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10).stdout

    def text(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "b")

    def wait_for(self, needle: str, timeout: float = 30.0) -> float:
        """Seconds since start when `needle` appeared on the screen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return time.monotonic() - self.started
            time.sleep(0.01)
        raise TimeoutError(f"{needle!r} never appeared; the screen:\n{self.text()}")

    def send(self, text: str) -> None:
        self._tmux("send-keys", "-t", "b", "-l", text)
        self._tmux("send-keys", "-t", "b", "Enter")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def idle_cpu(self, seconds: float) -> float:
        """% of one core over `seconds` (after a settling second)."""
        time.sleep(1.0)
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return 100 * (self.cpu_seconds() - c0) / (time.monotonic() - t0)

    def close(self) -> None:
        self._tmux("kill-server")


def _env(tmp: Path) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("FLASHCODE_")}
    return {**keep, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
            }


def _repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "README.md").write_text("bench\n")
    return repo


def bench_flashcode(tmp: Path, idle_s: float, chunks: int, rate: float) -> dict:
    words = [f"w{i} " for i in range(chunks)] + ["THE-END"]
    paced = [f"p{i} " for i in range(int(rate * 5))] + ["PACED-END"]  # 5 s at `rate`/s
    script = tmp / "script.json"
    script.write_text(json.dumps([{"stream": words}, {"stream": paced, "delay": 1 / rate}]))
    argv = [sys.executable, "-m", "tests.tui.scripted_main", str(script), "--endpoint",
            "http://127.0.0.1:9/v1", "--model-name", "scripted", "--no-rewrite",
            "-C", str(_repo(tmp))]
    term = Terminal(argv, _env(tmp), ROOT)
    try:
        tti = term.wait_for("or /help")
        idle = term.idle_cpu(idle_s)
        t0 = time.monotonic()
        term.send("stream please")
        try:
            term.wait_for("THE-END", timeout=30)
            stream = time.monotonic() - t0
        except TimeoutError as exc:  # seen now and then under tmux 3.3a: a stale pane
            print(f"burst: {exc}", file=sys.stderr)
            stream = None
        idle_after = term.idle_cpu(min(idle_s, 5.0))
        c0, t0 = term.cpu_seconds(), time.monotonic()
        term.send("paced please")
        term.wait_for("PACED-END", timeout=120)
        paced_s = time.monotonic() - t0
        paced_cpu = 100 * (term.cpu_seconds() - c0) / paced_s
    finally:
        term.close()
    return {"tti_s": tti, "idle_cpu_pct": idle, "stream_s": stream,
            "idle_after_stream_pct": idle_after, "paced_s": paced_s, "paced_cpu_pct": paced_cpu,
            "paced_ideal_s": len(paced) / rate}


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
    if shutil.which("tmux") is None:
        print("bench/tui.py needs tmux (apt-get install tmux)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "peer").mkdir()
        peer = bench_peer(tmp / "peer", args.idle_seconds)
        ours = bench_flashcode(tmp, args.idle_seconds, args.chunks, args.rate)
    print(f"time to interactive   flashcode {ours['tti_s']:.2f} s   bare textual "
          f"{peer['tti_s']:.2f} s   ratio {ours['tti_s'] / peer['tti_s']:.2f}")
    print(f"idle CPU over {args.idle_seconds:.0f} s  flashcode {ours['idle_cpu_pct']:.2f}% "
          f"of a core   bare textual {peer['idle_cpu_pct']:.2f}%")
    burst = ours["stream_s"]
    shown = "not seen on screen" if burst is None else \
        f"on screen in {burst:.2f} s ({args.chunks / burst:.0f} deltas/s)"
    print(f"streaming {args.chunks} deltas: {shown}; idle afterwards "
          f"{ours['idle_after_stream_pct']:.2f}% of a core")
    print(f"paced answer, {args.rate:.0f} tok/s for 5 s: on screen {ours['paced_s']:.2f} s after "
          f"Enter (the model's schedule: {ours['paced_ideal_s']:.2f} s), "
          f"{ours['paced_cpu_pct']:.1f}% of a core while streaming")
    return 0


if __name__ == "__main__":
    sys.exit(main())
