#!/bin/bash
# 2026-12-07: replaces chain75 (in git history), adding the relation look-up (see_69: the last phase
# of seed 4 again with it, LaME from its reason tokens, the one pass from [EMBED]) after seed 4 of
# those two. chain75 replaced chain74, adding the steps decoder (see_68, seed 0) after the
# seed-4 models. chain74 replaced chain73, adding seed 4 of the 6-layer sequential-latent
# baseline (see_67) after seed 4 of the others: the four seed-4 models are the ones to ship. chain73
# replaced chain72 on a new machine, whose runs/ did not carry over:
# the finished steps (through seed 3 of see_65) are dropped rather than retrained, and so are the
# steps that start from a lost run's phase (see_62 forced reading late, see_63 lambda 2.0: both from
# see_61's look-up phases). Seed 4 of the one pass, CoT and the rationale recipe (see_65) go first,
# then the 12-layer models, the rationale recipe's K ablation (see_66) with its equal-wall-time one
# pass, and the rest. Every step starts from stage 0 (runs/see/stage0-scene, a copy of
# assets/models/stage0-scene). Resumable: each step skips what is done.
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
scripts/queues/pipeline.sh see_59.json see-deeper-discriminative || exit 1
scripts/queues/pipeline.sh see_64.json see-deeper-lame-k16-readsrat || exit 1
scripts/queues/pipeline.sh see_59.json see-deeper-cot || exit 1
for k in 8 4 2 1; do scripts/queues/pipeline.sh see_66.json "see-deep-lame-k$k-readsrat" || exit 1; done
scripts/queues/pipeline.sh see_60.json see-deep-discriminative-ew14 || exit 1
scripts/queues/pipeline.sh see_59.json see-deeper-lame-k16 || exit 1
for s in 1 2; do scripts/queues/pipeline.sh see_57.json see-deep-lame-k16-reads "-s$s" || exit 1; done
for stem in see-deep-lame-k1 see-deep-lame-k4 see-deep-lame-k8 see-deep-discriminative-ew; do
  scripts/queues/pipeline.sh see_53.json "$stem" || exit 1
done
touch logs/chain76.done
