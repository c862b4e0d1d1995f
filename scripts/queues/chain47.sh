#!/bin/bash
# 2026-12-06: chain46 stopped during see_43's first run (it resumes here), after the CoT pipeline.
# To ship sooner, the sequential pipeline's first two phases are scored on validation only (no test,
# no validation_pairs); its last phase as every run. Then chain42 (discriminative seeds 2-4).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for run in see-sequential-k16-bind see-sequential-k16-bind-lookup; do
  .venv/bin/python scripts/science_queue.py scripts/queues/see_43.json --runs runs/see --only "$run" \
    --results "$RESULTS" > "logs/q_$run.log" 2>&1 || exit 1
done
scripts/queues/chain_pairs.sh see_43.json see-sequential-k16-bind-mixed || exit 1
scripts/queues/chain42.sh
touch logs/chain47.done
