#!/bin/bash
# 2026-12-06: replaces chain67 (in git history), whose steps it runs, skipping the finished ones.
# After the rationale recipe's seed 2 (see_61) and forced reading late's seed 0 (see_62, nearly
# trained), see_63 asks whether a heavier rationale decoder (lambda_decoder 2.0 against 0.5) makes
# the forced recipe hold over seeds: each seed's last phase again from that seed's own see_61
# look-up phase, so the comparison with see_61 is paired on the first two phases (seed 1, the one
# where the 6-layer latent recipes fail, first). Then the rest of chain67's order. Resumable.
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
for s in 1 2; do scripts/queues/pipeline.sh see_58.json see-deep-lame-k16-readsdec "-s$s" || exit 1; done
scripts/queues/pipeline.sh see_61.json see-deep-lame-k16-readsrat || exit 1
for s in 1 2; do scripts/queues/pipeline.sh see_61.json see-deep-lame-k16-readsrat "-s$s" || exit 1; done
scripts/queues/chain_pairs.sh see_62.json see-deep-lame-k16-latereads-bind-mixed || exit 1
for s in -s1 "" -s2; do scripts/queues/chain_pairs.sh see_63.json "see-deep-lame-k16-readsrat-ld2-bind-mixed$s" || exit 1; done
for s in -s1 -s2; do scripts/queues/chain_pairs.sh see_62.json "see-deep-lame-k16-latereads-bind-mixed$s" || exit 1; done
for stem in see-deep-lame-k8-readsdec see-deep-lame-k4-readsdec see-deep-lame-k2-readsdec \
    see-deep-lame-k1-readsdec see-deep-discriminative-ew14; do
  scripts/queues/pipeline.sh see_60.json "$stem" || exit 1
done
for s in 1 2; do scripts/queues/pipeline.sh see_57.json see-deep-lame-k16-reads "-s$s" || exit 1; done
for stem in see-deeper-lame-k16 see-deeper-discriminative see-deeper-cot; do
  scripts/queues/pipeline.sh see_59.json "$stem" || exit 1
done
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
touch logs/chain68.done
