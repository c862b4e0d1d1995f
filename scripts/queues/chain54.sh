#!/bin/bash
# 2026-12-06, for the next session: the binding pipeline on a 6-layer language model (size=fine-deep,
# the language model from scratch over stage 0's vision tower and scene head, init_parts=vision),
# discriminative, LaME K = 16 and CoT, seed 0 (queue see_50): does LaME use its reason tokens once
# the backbone has depth to spare, and does CoT still gain over a deeper one pass? Scored as every
# run (test, causal use, pairs). Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for kind in discriminative lame-k16 cot; do
  scripts/queues/pipeline.sh see_50.json "see-deep-$kind" || exit 1
done
touch logs/chain54.done
