#!/bin/bash
# 2026-12-06, after chain54 (the 6-layer pipeline): replaces chain53, whose finished runs it skips.
# CoT seed 3; then a LaME recipe (queue see_52: the decoder writes CoT's rationale from the layer-2
# reason states, the ones [EMBED]'s last layer reads, in every phase of the pipeline); LaME seed 3, CoT
# and LaME seed 4 (five seeds for the headline comparison); the pipeline's K and decoder ablation on
# seed 0 (queue see_51: K = 16 without the decoder, K = 8, 4, 2, 1; K = 0 is the discriminative
# pipeline); the sequential model's seeds 3-4. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/pipeline.sh see_45.json see-cot -s3 || exit 1
scripts/queues/pipeline.sh see_52.json see-lame-k16-rl2 || exit 1
scripts/queues/pipeline.sh see_45.json see-lame-k16 -s3 || exit 1
for kind in cot lame-k16; do scripts/queues/pipeline.sh see_45.json "see-$kind" -s4 || exit 1; done
for stem in see-lame-k16-nodec see-lame-k8 see-lame-k4 see-lame-k2 see-lame-k1; do
  scripts/queues/pipeline.sh see_51.json "$stem" || exit 1
done
for s in 3 4; do scripts/queues/pipeline.sh see_45.json see-sequential-k16 "-s$s" || exit 1; done
touch logs/chain55.done
