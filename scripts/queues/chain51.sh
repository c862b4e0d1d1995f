#!/bin/bash
# 2026-12-06: count, a scene head that reads its 3 x 3 neighbourhood (scene_head_context=3, queue
# see_48): 800 more stage-0 steps from the shipped stage 0 with the context head (the command in the
# README), then the discriminative binding pipeline on it; the first two phases scored on validation,
# the last as every run, then its count errors. chain48 (the seeds) is paused meanwhile. Resumable.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
for run in see-disc-ctx-bind see-disc-ctx-bind-lookup; do
  .venv/bin/python scripts/science_queue.py scripts/queues/see_48.json --runs runs/see --only "$run" \
    --results "$RESULTS" > "logs/q_$run.log" 2>&1 || exit 1
done
run=see-disc-ctx-bind-mixed
scripts/queues/chain_pairs.sh see_48.json "$run" || exit 1
test -f "runs/see/$run/count_errors.json" || .venv/bin/python scripts/binding_errors.py "runs/see/$run/model" \
  --split test --subtasks count --reference "runs/see/$run/eval_test.json" --out "runs/see/$run/count_errors.json" \
  > "logs/count_$run.txt" 2>&1 || exit 1
touch logs/chain51.done
