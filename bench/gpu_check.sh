#!/usr/bin/env bash
# Every GPU check of the engine on one CUDA machine (sized for one H200: under 8 minutes), into
# one JSON file:
#   1. the `gpu`-marked tests (CUDA-graph capture and replay of the decode step = eager, Triton
#      kernels, placement on CUDA)                                       <= 120 s
#   2. bench/kernels.py: each Triton kernel vs its twin and the roofline   <= 60 s
#   3. bench/gpu_decode.py: Flash widths, as many blocks as fit, 4K context, decode eager and
#      compiled + CUDA graph: tok/s and % of the HBM bound                 <= 240 s
#   4. bench/engine.py --device-map cuda:0 --contexts-only: the bench model vs transformers
#      on the GPU, eager (prefill, decode, x the memory floor)             <= 60 s
# Each step has its own time limit; a step that fails or runs out is recorded as such and the
# next one still runs.
#
#   bash bench/gpu_check.sh [OUT.json]        (default bench/out/gpu_check.json)
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh   (no GPU: checks the script itself on the CPU,
#                                              tiny shapes, no time limits kept)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:-bench/out/gpu_check.json}
py=${PYTHON:-python}
dry=${GPU_CHECK_DRY:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FLASHCODE_COMPILE_CACHE=${FLASHCODE_COMPILE_CACHE:-$work/inductor}
start=$(date +%s)

# step NAME LIMIT_S CMD...: runs CMD under LIMIT_S, its output in $work/NAME.log, and records
# NAME's exit status and seconds in $work/NAME.rc
step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    echo "== $name (limit ${limit} s): $*"
    timeout --kill-after=10 "$limit" "$@" >"$work/$name.log" 2>&1
    rc=$?
    echo "$rc $(($(date +%s) - t0))" >"$work/$name.rc"
    tail -n 5 "$work/$name.log"
    echo "-- $name: exit $rc in $(($(date +%s) - t0)) s"
}

if [ "$dry" = 1 ]; then
    step gpu_tests 600 "$py" -m pytest tests/engine/test_decode_step.py -m gpu -q \
        -p no:cacheprovider
    step kernels 600 env TRITON_INTERPRET=1 "$py" bench/kernels.py --dry-run
    step gpu_decode 900 "$py" bench/gpu_decode.py --dry-run --json "$work/gpu_decode.json"
    step engine 60 true  # the bench model's 16K contexts take ~15 min on a CPU: not a dry run
else
    step gpu_tests 120 "$py" -m pytest tests -m gpu -q -p no:cacheprovider
    step kernels 60 "$py" bench/kernels.py
    step gpu_decode 240 "$py" bench/gpu_decode.py --ctx 4096 --steps 64 \
        --json "$work/gpu_decode.json"
    step engine 60 "$py" bench/engine.py --device-map cuda:0 --decode eager --quick \
        --contexts-only --repeats 3 --json "$work/engine.json"
fi

"$py" - "$work" "$out" "$(($(date +%s) - start))" <<'EOF'
"""Collect each step's status, log tail and figures into one JSON file."""
import json
import sys
from pathlib import Path

work, out, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
res = {"seconds": total, "steps": {}}
for name in ("gpu_tests", "kernels", "gpu_decode", "engine"):
    rc_file = work / f"{name}.rc"
    if not rc_file.exists():
        res["steps"][name] = {"ran": False}
        continue
    rc, secs = (int(x) for x in rc_file.read_text().split())
    log = (work / f"{name}.log").read_text(errors="replace").splitlines()
    entry = {"exit": rc, "timed_out": rc in (124, 137), "seconds": secs, "tail": log[-40:]}
    figures = work / f"{name}.json"
    if figures.exists():
        entry["figures"] = json.loads(figures.read_text())
    res["steps"][name] = entry
res["ok"] = all(s.get("exit") == 0 for s in res["steps"].values())
out.write_text(json.dumps(res, indent=1))
print(f"gpu_check: {'ok' if res['ok'] else 'FAILED'} in {total} s -> {out}")
EOF
