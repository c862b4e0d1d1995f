#!/usr/bin/env bash
# The whole training matrix in ONE call on a lent GPU machine (1 GPU, 16 cores, ~10 minutes):
# stage 0, then every (preset, seed) run of scripts/train_matrix.py in parallel on the GPU, sized to
# end by a deadline, each evaluated on the held-out test split; results packed into $OUT.
#   usage (repo root, on the machine): OUT=/some/dir bash scripts/train_gpu_matrix.sh [END_SECONDS]
# Measured on one H100 + 16 cores (2026-11-26): one tiny-model process 0.19 s/step; 24 processes
# sharing the GPU 4.5 s/step each (no faster in total than one), 3 processes 0.5-0.6 s/step each.
# The tiny model is bound by Python and kernel launches, so run it with PARALLEL=2 or 3 there.
set -u
START=$(date +%s)
END=${1:-555}          # seconds after START by which everything (training + eval) must be done
OUT=${OUT:-/tmp/train-out}
mkdir -p "$OUT" runs
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[$(elapsed)s] $*" | tee -a "$OUT/device.log"; }

pack() {
  tar czf "$OUT/results.tar.gz" --ignore-failed-read runs/sizing.json runs/matrix.json \
    $(ls -d runs/*/ 2>/dev/null | grep -v cache | while read d; do for f in eval.json summary.json log.jsonl config.json stdout.log; do [ -f "$d$f" ] && echo "$d$f"; done; done) 2>/dev/null
  for r in lame-s0 discriminative-s0 cot-s0; do
    [ -f "runs/$r/eval.json" ] && tar czf "$OUT/model-$r.tar.gz" "runs/$r/model"
  done
  [ -d runs/stage0/model ] && tar czf "$OUT/stage0.tar.gz" runs/stage0/model runs/stage0/log.jsonl runs/stage0/summary.json 2>/dev/null
  return 0
}
trap pack EXIT

if ls .whl/transformers-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/transformers-*.whl .whl/regex-*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
say "python: $(python3 -c 'import torch, transformers, accelerate; print(torch.__version__, transformers.__version__, accelerate.__version__, torch.cuda.is_available())' 2>&1 | tail -1)"
nvidia-smi -L 2>&1 | tee -a "$OUT/device.log"

say "smoke (micro, cuda)"
if ! python3 -m lame_tools train --preset micro-lame --out /tmp/smoke --quiet > "$OUT/smoke.log" 2>&1; then
  say "GPU smoke failed; falling back to CPU processes"; tail -5 "$OUT/smoke.log" | tee -a "$OUT/device.log"
  export CUDA_VISIBLE_DEVICES=""
fi

say "prerender the train split"
python3 -c "from lame_tools.train import prerender; prerender('runs/cache', 0, workers=16)" 2>&1 | tail -2
say "prerendered $(ls runs/cache/seed0 | wc -l) scenes"

LEFT=$(( END - $(elapsed) ))
say "matrix: $LEFT s left"
python3 scripts/train_matrix.py --runs runs --parallel ${PARALLEL:-24} --threads 1 \
  --auto-size "$LEFT" --deadline "$LEFT" --eval-reserve ${EVAL_RESERVE:-90} \
  --set render_cache=runs/cache --set stage1_steps=150 --stage0-set render_cache=runs/cache \
  --aggregate runs/matrix.json 2>&1 | tee -a "$OUT/device.log"
say "finished"
