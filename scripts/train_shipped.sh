#!/usr/bin/env bash
# Reproduce the PREVIOUS three models (14 px patches, the caption stage 0; seed 0) from nothing, on CPU,
# and copy them into assets/models/ (the shipped models now come from scripts/train_see.sh).
# Stage 0 (the shared backbone) about 4 minutes, then each model about 4-6 minutes on 2 free cores.
# Every command is resumable: run the script again after an interruption and it continues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
# the shared backbone: locked-text warm-up of the vision tower on captions (600 steps)
$PY -m lame_tools train --preset stage0 --out runs/stage0 --threads 1 --resume --set render_cache=runs/cache
# lame (K=8 + latent decoder), discriminative (K=0), cot (explicit rationale): 100 + 500 steps each,
# then the held-out test split (scores into each model's training.json), then copied into assets/models/
$PY scripts/train_matrix.py --runs runs --only lame:0,discriminative:0,cot:0 --skip-stage0 --ship \
  --parallel 1 --threads 1 --set render_cache=runs/cache
