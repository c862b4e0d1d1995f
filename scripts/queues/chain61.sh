#!/bin/bash
# 2026-12-06: replaces chain60 (in git history), whose steps it runs, skipping the finished ones (the
# 6-layer LaME, one pass and CoT seed 2, see_54, see_55, the 6-layer LaME without decoder), with the
# 6-layer sequential-latent model moved up. Hiding the 16 tokens from [EMBED] (causal_use.py --how mask) costs no 6-layer LaME
# more than 1.3 points of reasoning: the one-pass models do not read them, so what is left to learn
# is whether serial latent steps (the sequential model) buy what parallel ones do not, and whether
# blind tokens (see_56, the register control) gain what seeing ones do. Order: blind seed 0, the
# 6-layer sequential model, blind seed 2, K = 1, 4, 8, the one pass at LaME's wall time, then the
# 3-layer queue. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/pipeline.sh see_53.json see-deep-lame-k16 -s2 || exit 1
scripts/queues/chain_pairs.sh see_54.json see-deep-lame-k16-rl3-bind-mixed || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-discriminative -s2 || exit 1
scripts/queues/chain_pairs.sh see_55.json see-deep-lame-k16-rl3-rd50-bind-mixed || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-cot -s2 || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-lame-k16-nodec || exit 1
scripts/queues/pipeline.sh see_56.json see-deep-lame-k16-blind || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-sequential-k16 || exit 1
scripts/queues/pipeline.sh see_56.json see-deep-lame-k16-blind -s2 || exit 1
for stem in see-deep-lame-k1 see-deep-lame-k4 see-deep-lame-k8 see-deep-discriminative-ew; do
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
touch logs/chain61.done
