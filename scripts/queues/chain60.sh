#!/bin/bash
# 2026-12-06: replaces chain59 (and chain58, chain57), whose finished runs it skips; chain59 with the
# register control added (queue see_56, reason_reads=reasons: the reason tokens attend only to each
# other, blind to the input, no decoder): seed 0 after the 6-layer LaME without its decoder (its
# pair: the same recipe with seeing tokens), seed 2 after K = 1. In every 6-layer LaME so far the
# tokens' content does not matter (swap costs nothing): if blind tokens gain as much, the gain is
# the positions'. Before that, as chain59: the 6-layer LaME, one pass and CoT seeds 1-2, see_54 and
# see_55; after it the 6-layer sequential model, the one pass at LaME's wall time, K = 4 and 8, and
# the 3-layer queue. Resumable: run it again after a stop.
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
scripts/queues/pipeline.sh see_53.json see-deep-lame-k1 || exit 1
scripts/queues/pipeline.sh see_56.json see-deep-lame-k16-blind -s2 || exit 1
for stem in see-deep-sequential-k16 see-deep-discriminative-ew see-deep-lame-k4 see-deep-lame-k8; do
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
touch logs/chain60.done
