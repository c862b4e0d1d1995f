#!/bin/bash
# 2026-12-07: replaces chain77 (in git history), moving the decoder ablation's seeds 1-2 (see_57:
# the rationale recipe without its decoder) before the 12-layer search, so that the decoder-loss
# ablation has three seeds. chain77 put the shipped recipe's K ablation (see_66: K = 8, 4, 2, 1,
# seed 0) and its equal-wall-time one pass (see_60's ew14) before the 12-layer trio (see_59,
# see_64), after seed 4 of the 6-layer sequential-latent baseline (see_67, the fourth shipped model)
# and the steps decoder (see_68). Earlier chains (history): chain76 added the relation look-up
# (see_69), chain75 the steps decoder, chain74 the sequential seed 4; chain73 was written on a new
# machine whose runs/ did not carry over, so it dropped the finished steps and the steps that start
# from a lost run's phase (see_62, see_63). Every step starts from stage 0 (runs/see/stage0-scene, a
# copy of assets/models/stage0-scene). Resumable: each step skips what is done.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs runs/see
test -d runs/see/stage0-scene/model || { mkdir -p runs/see/stage0-scene && cp -r assets/models/stage0-scene runs/see/stage0-scene/model; }
for stem in see-deep-lame-k16-readsrat see-deep-discriminative; do
  scripts/queues/pipeline.sh see_65.json "$stem" -s4 || exit 1
done
scripts/queues/chain_pairs.sh see_69.json see-deep-lame-k16-readsrat-relook-bind-mixed-s4 see-deep-disc-relook-bind-mixed-s4 || exit 1
scripts/queues/pipeline.sh see_65.json see-deep-cot -s4 || exit 1
scripts/queues/pipeline.sh see_67.json see-deep-sequential-k16 -s4 || exit 1
scripts/queues/pipeline.sh see_68.json see-deep-lame-k16-readsteps || exit 1
for k in 8 4 2 1; do scripts/queues/pipeline.sh see_66.json "see-deep-lame-k$k-readsrat" || exit 1; done
scripts/queues/pipeline.sh see_60.json see-deep-discriminative-ew14 || exit 1
for s in 1 2; do scripts/queues/pipeline.sh see_57.json see-deep-lame-k16-reads "-s$s" || exit 1; done
scripts/queues/pipeline.sh see_59.json see-deeper-discriminative || exit 1
scripts/queues/pipeline.sh see_64.json see-deeper-lame-k16-readsrat || exit 1
scripts/queues/pipeline.sh see_59.json see-deeper-cot || exit 1
scripts/queues/pipeline.sh see_59.json see-deeper-lame-k16 || exit 1
for stem in see-deep-lame-k1 see-deep-lame-k4 see-deep-lame-k8 see-deep-discriminative-ew; do
  scripts/queues/pipeline.sh see_53.json "$stem" || exit 1
done
touch logs/chain78.done
