#!/bin/bash
# 2026-12-05, after chain38's first runs (the sw-mix-ft control was stopped at its first steps: the
# look-up beside every subtask bound nothing, see_36): scene words alone (queue see_37: the full
# recipe; the word look-up on colour_of / shape_of alone, where the sw model's binding appeared at
# about step 190 but keyed on the raw token; then that model continued on every subtask, the look-up
# kept, to bring the other subtasks back), then the rest of chain38 (scene words, discriminative
# seeds 1-4; the LaME K = 16, sequential K = 16 and CoT recipes with scene words).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for run in see-discriminative-swo see-disc-swo-wordlookup-ft see-disc-swo-wl-ft-mix; do
  scripts/queues/chain.sh see_37.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-discriminative-sw-s1 see-discriminative-sw-s2 see-discriminative-sw-s3 see-discriminative-sw-s4 \
    see-lame-k16-sw see-sequential-k16-sw see-cot-ownret-sw; do
  scripts/queues/chain.sh see_34.json $run && scripts/queues/pairs.sh $run || exit 1
done
touch logs/chain39.done
