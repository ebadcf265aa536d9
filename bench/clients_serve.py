"""The server side of bench/clients.py: `flashcode serve` on a fresh make-tiny checkpoint
(with an API key and a token limit), its request log read as it comes, and the nudge that makes
the random model end its replies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
LOG = re.compile(r"^\S+ (\w+) (\S+) (\d{3}) ([\d.]+)s ?(.*)$")


def ends_replies(ckpt: Path, scale: float) -> None:
    """Make the random model end its replies as a real one does: the output head's rows for
    end-of-sentence and `</think>` become `scale` times one fixed unit direction, so wherever
    the final hidden state leans that way (a few percent of steps at scale 8) the reply or its
    reasoning ends; the other rows stay random. Replies then run ~10-50 tokens, and how a
    client finishes is its own to report (without this every reply is cut at the limit)."""
    import torch
    from safetensors.torch import load_file, save_file

    added = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    ends = [json.loads((ckpt / "config.json").read_text())["eos_token_id"],
            next(t["id"] for t in added if t["content"] == "</think>")]
    for shard in ckpt.glob("*.safetensors"):
        tensors = load_file(shard)
        if "head.weight" in tensors:
            head = tensors["head.weight"]
            u = torch.randn(head.shape[1], generator=torch.Generator().manual_seed(0))
            for i in ends:
                head[i] = (scale * u / u.norm()).to(head.dtype)
            save_file(tensors, shard, metadata={"format": "pt"})


class Serve:
    """`flashcode serve` on a fresh make-tiny checkpoint, its request log read as it comes."""

    def __init__(self, work: Path, max_tokens: int, ending: float) -> None:
        ckpt = work / "tiny"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "agent.cli", "engine", "make-tiny", str(ckpt)],
                       check=True, env=env, cwd=ROOT, capture_output=True)
        if ending:
            ends_replies(ckpt, ending)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "serve", "--model", str(ckpt), "--port", "0",
             "--name", "tiny", "--context-window", "262144", "--api-key", KEY,
             "--max-tokens-limit", str(max_tokens)],
            env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
        if not found:
            raise SystemExit(f"serve did not start: {line}{self.proc.stderr.read()}")
        self.base = found.group(1)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()

    def requests_since(self, mark: int) -> list[tuple]:
        """The requests logged since line `mark` (a line is written just after its reply is
        sent, so wait until the log has stopped growing)."""
        seen, still = -1, time.monotonic() + 30
        while len(self.lines) != seen and time.monotonic() < still:
            seen = len(self.lines)
            time.sleep(0.5)
        out = []
        for line in self.lines[mark:]:
            m = LOG.match(line.strip())
            if m:
                out.append((m.group(1), m.group(2), int(m.group(3)), m.group(5)))
        return out

    def close(self, log: Path) -> None:
        log.write_text("".join(self.lines))
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
