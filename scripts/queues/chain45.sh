#!/bin/bash
# 2026-12-06: chain44 stopped during see_42's training (it resumes here). Then queue see_43, the
# binding pipeline for the sequential-latent baseline (K = 16; its word look-up read on the prompt
# pass; presets see-sequential-k16-bind*), seed 0; then chain42 (discriminative seeds 2-4).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_42.json see-cot-swo-rn-from-disc || exit 1
scripts/queues/chain_pairs.sh see_43.json see-sequential-k16-bind see-sequential-k16-bind-lookup \
  see-sequential-k16-bind-mixed || exit 1
scripts/queues/chain42.sh
touch logs/chain45.done
