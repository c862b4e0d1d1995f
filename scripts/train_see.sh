#!/usr/bin/env bash
# Reproduce the shipped models (seed 0) from nothing, on CPU, and copy them into assets/models/:
# stage 0 (the backbone that sees: scene-graph supervision of the vision tower, locked text), then
# for each of the discriminative, LaME (K = 16), explicit-CoT (own rationales on retrieval) and
# sequential-latent (K = 16) models its binding pipeline, three runs each continuing the previous
# one's model (presets see-<kind>-bind: renamed scene words alone; -bind-lookup: the word look-up on
# colour_of / shape_of; -bind-mixed: every subtask with count weighted, the look-up kept), each shipped
# model evaluated on the balanced test split (scores with intervals into its training.json and
# assets/results/).
# Every command is resumable: run the script again after an interruption and it continues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
$PY -m lame_tools train --preset stage0-scene --out runs/see/stage0-scene --resume --quiet
for kind in discriminative lame-k16 cot sequential-k16; do
  for phase in bind bind-lookup bind-mixed; do
    $PY -m lame_tools train --preset "see-$kind-$phase" --out "runs/see/see-$kind-$phase" --resume --quiet
  done
done
$PY scripts/ship_see.py --runs runs/see
