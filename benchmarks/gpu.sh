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
# Without CUDA, stop at once (a few seconds: one torch import) with a clear message.
"$PY" -c '
import os, sys, torch
if not torch.cuda.is_available():
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.exit(f"benchmarks/gpu.sh: no CUDA device: torch {torch.__version__} (CUDA build: {torch.version.cuda}) "
             f"sees none" + (f" with CUDA_VISIBLE_DEVICES={seen!r}" if seen is not None else "")
             + "; run it on a machine with an NVIDIA GPU")'
"$PY" -c 'import torch; print("card:", torch.cuda.get_device_name(0))'
if [ "$#" -eq 0 ]; then set -- edit sagan_step recognition demo; fi
exec "$PY" -m benchmarks "$@" \
    --device cuda --bf16 --compile \
    --batch "${BATCH:-64}" --scale "${SCALE:-4}" --paper-batch 16 \
    --results benchmarks/results_gpu.json
