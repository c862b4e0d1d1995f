#!/bin/bash
# 2026-12-06: replaces chain62 (in git history), whose steps it runs, skipping the finished ones, with
# one recipe put before the K ablation: queue see_58, forced use (embed_reads=reasons) *with* the
# rationale decoder. Forced use without the decoder (see_57) made the 6-layer LaME read its tokens
# (mask -35.7) and recovered 26% of CoT's gain; the decoder is what made the 3-layer tokens carry the
# rationale. Together: tokens trained to hold the rationale, and an [EMBED] that can only read them.
# Then K = 1, 4, 8 (6-layer), the one pass at LaME's wall time, and the 3-layer queue. Resumable.
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
scripts/queues/pipeline.sh see_57.json see-deep-lame-k16-reads || exit 1
scripts/queues/pipeline.sh see_53.json see-deep-sequential-k16 || exit 1
scripts/queues/pipeline.sh see_56.json see-deep-lame-k16-blind -s2 || exit 1
scripts/queues/pipeline.sh see_58.json see-deep-lame-k16-readsdec || exit 1
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
touch logs/chain63.done
