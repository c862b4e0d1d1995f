#!/bin/bash
# 2026-12-06: replaces chain58 (and chain57), whose finished runs it skips; chain58 with one run added
# after the 6-layer one pass's seed 2: see_54 again with direct-route dropout (queue see_55,
# direct_route_dropout=0.5: on half the steps `[EMBED]` reads only the reason tokens, which now hold
# the rationale at layer 3), since see_54's tokens held it and `[EMBED]` did not read it (swap +0.0).
# chain58's run, after the 6-layer LaME's seed 2: the 6-layer LaME's last phase again from its seed-0 look-up phase with the
# latent decoder reconstructing the rationale from the middle layer's reason states (queue see_54:
# decoder_target=rationale, reason_layer=3 of 6), so that the reason tokens hold the written steps
# where `[EMBED]`'s last three layers can read them. Then as chain57: seed 2 of the 6-layer one pass
# and CoT; on seed 0 the 6-layer LaME without decoder, K = 1, sequential, the one pass at LaME's wall
# time, K = 4 and 8; the 3-layer queue. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/pipeline.sh see_53.json see-deep-lame-k16 -s2 || exit 1
scripts/queues/chain_pairs.sh see_54.json see-deep-lame-k16-rl3-bind-mixed || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-discriminative -s2 || exit 1
scripts/queues/chain_pairs.sh see_55.json see-deep-lame-k16-rl3-rd50-bind-mixed || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-cot -s2 || exit 1
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
touch logs/chain59.done
