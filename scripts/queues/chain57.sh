#!/bin/bash
# 2026-12-06: replaces chain56 (and chain55, chain53), whose finished runs it skips. After the 6-layer
# pipeline of chain54, whose LaME gains on reasoning (+6.5 [+4.0, +9.0] over its one pass, seed 0)
# through reason tokens whose content it does not use (swap and swap-task cost nothing), in order:
# seeds 1 and 2 of the 6-layer LaME, one-pass and CoT models (queue see_53); then, seed 0, what the
# gain comes from: the 6-layer LaME without its decoder, with K = 1; the 6-layer sequential-latent
# model; the one pass at LaME's wall time (1.15x the steps); K = 4 and 8 (all see_53). Then the
# 3-layer queue of chain56: CoT seed 3, the rationale-decoder recipe (see_52), seeds 3-4 of LaME
# and CoT, the K ablation (see_51), sequential seeds 3-4. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for s in 1 2; do
  for kind in lame-k16 discriminative cot; do scripts/queues/pipeline.sh see_53.json "see-deep-$kind" "-s$s" || exit 1; done
done
for stem in see-deep-lame-k16-nodec see-deep-lame-k1 see-deep-sequential-k16 see-deep-discriminative-ew \
    see-deep-lame-k4 see-deep-lame-k8; do
  scripts/queues/pipeline.sh see_53.json "$stem" || exit 1
done
scripts/queues/pipeline.sh see_45.json see-cot -s3 || exit 1
scripts/queues/pipeline.sh see_52.json see-lame-k16-rl2 || exit 1
scripts/queues/pipeline.sh see_45.json see-lame-k16 -s3 || exit 1
for kind in cot lame-k16; do scripts/queues/pipeline.sh see_45.json "see-$kind" -s4 || exit 1; done
for stem in see-lame-k16-nodec see-lame-k8 see-lame-k4 see-lame-k2 see-lame-k1; do
  scripts/queues/pipeline.sh see_51.json "$stem" || exit 1
done
for s in 3 4; do scripts/queues/pipeline.sh see_45.json see-sequential-k16 "-s$s" || exit 1; done
touch logs/chain57.done
