#!/bin/bash
# 2026-12-06: queue see_40, seeds 2-4 of the discriminative binding pipeline of see_39 (renamed words
# alone: the full recipe, the word look-up on colour_of / shape_of, then every subtask with count
# drawn 4 times as often), five seeds with see_39's seeds 0 and 1.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for s in 2 3 4; do
  scripts/queues/chain_pairs.sh see_40.json see-discriminative-swo-rn-s$s see-disc-swo-rn-s$s-wordlookup-ft \
    see-disc-swo-rn-s$s-wl-ft-mixc || exit 1
done
touch logs/chain42.done
