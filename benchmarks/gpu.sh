#!/usr/bin/env bash
# The benchmark figures on a CUDA machine: ours with bf16 autocast,
# channels_last (the stages' CUDA layout), torch.compile of the generator and
# larger batches; the references stay plain. Writes benchmarks/results_gpu.json
# (with the card's name under each section's "machine") and adds a GPU table
# to benchmarks/RESULTS.md.
#
#   benchmarks/gpu.sh [SECTION ...]      (default: edit sagan_step recognition demo)
#
# Environment: BATCH (default 64), SCALE (work sizes, default 4: a GPU finishes
# the CPU sizes too fast to time), PY (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "benchmarks/gpu.sh: no CUDA device")'
"$PY" -c 'import torch; print("card:", torch.cuda.get_device_name(0))'
if [ "$#" -eq 0 ]; then set -- edit sagan_step recognition demo; fi
exec "$PY" -m benchmarks "$@" \
    --device cuda --bf16 --compile \
    --batch "${BATCH:-64}" --scale "${SCALE:-4}" --paper-batch 16 \
    --results benchmarks/results_gpu.json
