#!/bin/bash
# 2026-12-06: chain45 stopped during see_43's first run (it resumes here). The binding pipeline for
# CoT (see_44: the renamed CoT of see_41 is its phase 1, see-cot-bind; then the word look-up read
# from the question, before [THINK], and every subtask with count weighted), then for the
# sequential-latent baseline (see_43), then chain42 (discriminative seeds 2-4).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_44.json see-cot-bind-lookup see-cot-bind-mixed || exit 1
scripts/queues/chain_pairs.sh see_43.json see-sequential-k16-bind see-sequential-k16-bind-lookup \
  see-sequential-k16-bind-mixed || exit 1
scripts/queues/chain42.sh
touch logs/chain46.done
