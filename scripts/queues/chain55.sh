#!/bin/bash
# 2026-12-06, after chain54 (the 6-layer pipeline): replaces chain53, whose finished runs it skips.
# Seeds 3-4 of LaME and CoT first (five seeds for the headline comparison), then the pipeline's K and
# decoder ablation on seed 0 (queue see_51: K = 16 without the decoder, K = 8, 4, 2, 1; K = 0 is the
# discriminative pipeline), then the sequential model's seeds 3-4. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for s in 3 4; do
  for kind in lame-k16 cot; do scripts/queues/pipeline.sh see_45.json "see-$kind" "-s$s" || exit 1; done
done
for stem in see-lame-k16-nodec see-lame-k8 see-lame-k4 see-lame-k2 see-lame-k1; do
  scripts/queues/pipeline.sh see_51.json "$stem" || exit 1
done
for s in 3 4; do scripts/queues/pipeline.sh see_45.json see-sequential-k16 "-s$s" || exit 1; done
touch logs/chain55.done
