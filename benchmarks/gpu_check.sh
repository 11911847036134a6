#!/usr/bin/env bash
# The one prepared GPU check (what it runs: benchmarks/gpu_check.py's docstring). From a fresh copy
# of the repository, on a CUDA machine:
#     bash benchmarks/gpu_check.sh [--out PATH] [--budget SECONDS]
# writes one JSON summary ($OUT/gpu_check.json by default) and exits 0 only when every step passed,
# 1 when one did not, 3 (having run nothing) when there is no CUDA device.
# Python: .venv if present; else a python3 that already imports torch and the harness's needs (the
# repository on PYTHONPATH); else `make install` creates .venv. The install is outside the budget.
set -u
cd "$(dirname "$0")/.."
summary_path() {  # where gpu_check.py would write the summary: --out, else $OUT, else .
    local prev="" out="${OUT:-.}/gpu_check.json"
    for arg in "$@"; do [ "$prev" = "--out" ] && out="$arg"; prev="$arg"; done
    echo "$out"
}
no_cuda() {
    echo "gpu_check: no CUDA device ($1); nothing was run"
    local out; out="$(summary_path "$@")"
    mkdir -p "$(dirname "$out")"
    printf '{"status": "no CUDA", "passed": false, "reason": "%s", "steps": {}}\n' "$1" > "$out"
    exit 3
}
# No driver, no GPU: say so before spending minutes on an install.
if ! command -v nvidia-smi >/dev/null 2>&1; then no_cuda "nvidia-smi not found" "$@"; fi
if ! nvidia-smi -L >/dev/null 2>&1; then no_cuda "nvidia-smi lists no GPU" "$@"; fi
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
elif python3 -c "import torch, torchvision, ray, mlflow, yaml, sklearn, scipy, pandas, optuna" >/dev/null 2>&1; then
    PY=python3
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    timeout 600 make install || { echo "gpu_check: make install failed"; exit 1; }
    PY=.venv/bin/python
fi
exec timeout 540 "$PY" benchmarks/gpu_check.py "$@"
