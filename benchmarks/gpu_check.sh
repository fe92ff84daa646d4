#!/usr/bin/env bash
# GPU check: every chapter at LESSONS_SCALE=full on CUDA (one run each, its explorers swept for the
# latency table in the same run), then the peers and the scaling on the GPU, written in the format of
# results.md to ${1:-benchmarks}/results-gpu.md (plots next to it). Without a GPU it runs on the CPU
# and says so.
#
# Needs only a python3 with torch, numpy, matplotlib and pillow: without Jupyter the notebooks run in
# benchmarks/runner.py's in-process executor (nbclient is used when it and ipykernel are installed).
#
#   benchmarks/gpu_check.sh [OUTDIR]
#
# Environment: PYTHON (default python3); NB_TIMEOUT seconds per notebook (default 180); BUDGET
# seconds after which no further notebook is started (default 300, so the whole check fits in 10
# minutes); SECTIONS (default chapters,latency,peers,scaling); CHAPTERS (names, default all);
# EXECUTOR (auto|inprocess|nbclient); BENCH_ARGS (more bench.py options). Results are rewritten
# after every notebook, so an interrupted run still leaves its partial tables. To spread the
# chapters over several commands, give each its own OUTDIR, e.g.
#   CHAPTERS="stability drift" SECTIONS=chapters,latency benchmarks/gpu_check.sh out/part2
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-benchmarks}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 LESSONS_SCALE=full MPLBACKEND=Agg

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  export LESSONS_DEVICE=cuda
  NOTE="gpu_check.sh on CUDA"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  export LESSONS_DEVICE=cpu
  NOTE="gpu_check.sh found no CUDA device, so this ran on the CPU (full scale)"
  echo "gpu_check: torch sees no CUDA device; running on the CPU instead (the results say so)"
fi
"$PY" -c 'import torch, platform; print(f"gpu_check: python {platform.python_version()}, torch {torch.__version__}")'

# shellcheck disable=SC2086  # CHAPTERS and BENCH_ARGS are word lists
"$PY" benchmarks/bench.py --scale full --device "$LESSONS_DEVICE" --runs 1 --combined --skip-build \
  --executor "${EXECUTOR:-auto}" --sections "${SECTIONS:-chapters,latency,peers,scaling}" \
  --timeout "${NB_TIMEOUT:-180}" --budget "${BUDGET:-300}" --note "$NOTE" \
  --out "$OUT/results-gpu.md" ${CHAPTERS:+--chapters $CHAPTERS} ${BENCH_ARGS:-}
status=$?
echo "gpu_check: wrote $OUT/results-gpu.md (exit $status)"
exit $status
