"""The peer for the benches: Aider (aider-chat), installed into its own virtual environment under
bench/out/ so it never touches flashcode's. `ensure_aider()` returns that venv's python."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
VENV = OUT / "aider-venv"
AIDER = "aider-chat==0.86.2"


def ensure_aider() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import aider.coders.editblock_coder, aider.repomap"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing {AIDER} into {VENV} (once) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", AIDER], check=True)
    print(f"installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return python
