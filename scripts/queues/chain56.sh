#!/bin/bash
# 2026-12-06: replaces chain55 (and chain53), whose finished runs it skips. After the 6-layer pipeline
# of chain54, whose LaME is the first pipeline LaME with a reasoning gain (test: +6.5 [+4.0, +9.0]
# over the 6-layer one-pass model, one seed), in order: seeds 1 and 2 of the 6-layer LaME, one-pass
# and CoT models (queue see_53); the 6-layer sequential-latent model, seed 0 (see_53); the 6-layer
# LaME without its decoder (see_53, seed 0: is the gain the decoder's or the 16 extra positions'?);
# CoT seed 3 and the rationale-decoder recipe (see_52); seeds 3-4 of the 3-layer LaME and CoT; the
# 3-layer K ablation (see_51); sequential seeds 3-4. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for s in 1 2; do
  for kind in lame-k16 discriminative cot; do scripts/queues/pipeline.sh see_53.json "see-deep-$kind" "-s$s" || exit 1; done
done
scripts/queues/pipeline.sh see_53.json see-deep-sequential-k16 || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-lame-k16-nodec || exit 1
scripts/queues/pipeline.sh see_45.json see-cot -s3 || exit 1
scripts/queues/pipeline.sh see_52.json see-lame-k16-rl2 || exit 1
scripts/queues/pipeline.sh see_45.json see-lame-k16 -s3 || exit 1
for kind in cot lame-k16; do scripts/queues/pipeline.sh see_45.json "see-$kind" -s4 || exit 1; done
for stem in see-lame-k16-nodec see-lame-k8 see-lame-k4 see-lame-k2 see-lame-k1; do
  scripts/queues/pipeline.sh see_51.json "$stem" || exit 1
done
for s in 3 4; do scripts/queues/pipeline.sh see_45.json see-sequential-k16 "-s$s" || exit 1; done
touch logs/chain56.done
