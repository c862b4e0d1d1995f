#!/bin/bash
# 2026-12-05: queue see_38, scene words alone with every training example's shape and colour words
# relabelled (rename_words=1.0): the full recipe, the word look-up on colour_of / shape_of, then every
# subtask (the see_37 pipeline, renamed); then the rest of chain39.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for run in see-discriminative-swo-rn see-disc-swo-rn-wordlookup-ft see-disc-swo-rn-wl-ft-mix; do
  scripts/queues/chain.sh see_38.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-discriminative-sw-s1 see-discriminative-sw-s2 see-discriminative-sw-s3 see-discriminative-sw-s4 \
    see-lame-k16-sw see-sequential-k16-sw see-cot-ownret-sw; do
  scripts/queues/chain.sh see_34.json $run && scripts/queues/pairs.sh $run || exit 1
done
touch logs/chain40.done
