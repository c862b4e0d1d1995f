#!/bin/bash
# 2026-12-06: queue see_39, the renamed-words pipeline of see_38 (full recipe, word look-up on
# colour_of / shape_of, then every subtask) with count drawn 4 times as often in the last phase
# ("mixc": see_38's mix lost count, 17) for LaME K = 16 (seed 0) and the discriminative model (the
# seed-0 look-up model of see_38, then seed 1 from the start); then scene words over seeds.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for run in see-disc-swo-rn-wl-ft-mixc see-lame-k16-swo-rn see-k16-swo-rn-wordlookup-ft see-lame-k16-swo-rn-wl-ft-mixc \
    see-discriminative-swo-rn-s1 see-disc-swo-rn-s1-wordlookup-ft see-disc-swo-rn-s1-wl-ft-mixc; do
  scripts/queues/chain.sh see_39.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-discriminative-sw-s1 see-discriminative-sw-s2 see-discriminative-sw-s3 see-discriminative-sw-s4; do
  scripts/queues/chain.sh see_34.json $run && scripts/queues/pairs.sh $run || exit 1
done
touch logs/chain41.done
