#!/bin/bash
# 2026-12-06: count, the scene head's straddling objects (scene_border_margin, queue see_47): the
# discriminative pipeline's last phase from the shipped model's look-up phase, objects within 0.15 of
# a cell of a border held exactly once by the cells around it; scored as every run, then the count
# errors (scripts/binding_errors.py --subtasks count). chain48 (the seeds) is paused meanwhile.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
run=see-discriminative-bind-border
scripts/queues/chain_pairs.sh see_47.json "$run" || exit 1
test -f "runs/see/$run/count_errors.json" || .venv/bin/python scripts/binding_errors.py "runs/see/$run/model" \
  --split test --subtasks count --reference "runs/see/$run/eval_test.json" --out "runs/see/$run/count_errors.json" \
  > "logs/count_$run.txt" 2>&1 || exit 1
touch logs/chain50.done
