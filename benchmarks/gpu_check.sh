#!/usr/bin/env bash
# GPU readiness check for radiossl: every CUDA path in one short run (sized for under 10 minutes on
# one GPU), plus pretraining throughput as a fraction of the matmul peak measured in the same run.
#
# Usage (from anywhere; nothing is installed, nothing is downloaded):
#   benchmarks/gpu_check.sh                      # every check on the GPUs of this machine
#   benchmarks/gpu_check.sh --only throughput    # a subset (names: benchmarks/gpu_check.sh --list)
#   PYTHON=/opt/venv/bin/python OUT=/tmp/out benchmarks/gpu_check.sh
#
# Environment:
#   PYTHON        the interpreter to use (default: python3); it needs torch, and radiossl's
#                 dependencies (pydantic, typer, numpy, scipy, ...) for the checks that train.
#                 A missing optional module (faiss-gpu, say) turns its check into a SKIP line.
#   OUT           folder for gpu_check.json (default: the current folder)
#   GPU_CHECK_*   sizes and step counts (see the Settings table in benchmarks/gpu_check.py)
#
# Output: one line per check, "PASS|FAIL|SKIP name: detail (seconds)", and gpu_check.json with every
# number. Exit code: 0 when nothing failed, 1 when a check failed, 2 for usage errors.
# Record the figures in docs/benchmarks.md ("GPU check").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "SKIP all: no Python interpreter '$python' (set PYTHON=/path/to/python)" >&2
    exit 2
fi
if ! "$python" -c "import torch" >/dev/null 2>&1; then
    echo "SKIP all: $python cannot import torch (set PYTHON to an interpreter that has it)" >&2
    exit 2
fi

# This checkout's radiossl comes first, installed or not.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$here/gpu_check.py" "$@"
