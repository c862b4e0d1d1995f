#!/usr/bin/env bash
# Reproduce the shipped models (seed 0) from nothing, on CPU, and copy them into assets/models/:
# stage 0 (the backbone that sees: scene-graph supervision of the vision tower, locked text), then
# the discriminative, LaME (K = 16), explicit-CoT (own rationales on retrieval) and sequential-latent (K = 16) models
# on it, each evaluated on the balanced test split (scores with intervals into its training.json and
# assets/results/).
# Every command is resumable: run the script again after an interruption and it continues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
$PY -m lame_tools train --preset stage0-scene --out runs/see/stage0-scene --resume --quiet
for preset in see-discriminative see-lame-k16 see-cot-ownret see-sequential-k16; do
  $PY -m lame_tools train --preset "$preset" --out "runs/see/$preset" --resume --quiet
done
$PY scripts/ship_see.py --runs runs/see
