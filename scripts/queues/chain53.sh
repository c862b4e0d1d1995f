#!/bin/bash
# 2026-12-06: chain48's seeds in the order that gives LaME, CoT and the discriminative model three
# seeds each first (the headline comparison), then the sequential model's: CoT seed 1, LaME seed 2,
# CoT seed 2, sequential seeds 1 and 2, then seeds 3-4 of each (queue see_45). Replaces chain48,
# whose finished runs it skips. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
pipeline() {  # KIND SEED: the three phases, then test, causal use and validation_pairs of the last
  scripts/queues/pipeline.sh see_45.json "see-$1" "-s$2" || exit 1
}
pipeline cot 1
pipeline lame-k16 2
pipeline cot 2
pipeline sequential-k16 1
pipeline sequential-k16 2
for s in 3 4; do
  for kind in lame-k16 cot sequential-k16; do pipeline $kind $s; done
done
touch logs/chain53.done
