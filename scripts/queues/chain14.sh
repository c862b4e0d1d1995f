#!/bin/bash
# The session chain of 2026-12-03, in the order it ran (one heavy job at a time; every step is skipped
# when done or resumes): the CoT with own rationales on retrieval (seed 0 rerun, seeds 1 and 2) and
# K = 16 (seed 0 rerun, seed 1), each scored on validation by the queue and on the balanced test split.
set -x
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
queue() { $PY scripts/science_queue.py "scripts/queues/$1" --runs runs/see "${@:2}"; }
test_eval() {
  d=runs/see/$1
  test -f "$d/eval_test.json" || $PY -m lame_tools eval --model "$d/model" --split test --out "$d/eval_test.json" --no-progress
}
queue see_14_rerun.json --results logs/rerun_validation.json > logs/see14r.log 2>&1
queue see_14.json > logs/see14.log 2>&1
test_eval see-cot-ownret > logs/see14test.log 2>&1
test_eval see-cot-ownret-s1 > logs/test_see-cot-ownret-s1.log 2>&1
queue see_14_s2.json > logs/see14s2.log 2>&1
test_eval see-cot-ownret-s2 > logs/test_see-cot-ownret-s2.log 2>&1
queue see_14_rerun_k16.json --results logs/rerun_validation.json > logs/see14k.log 2>&1
test_eval see-lame-k16 > logs/test_k16.log 2>&1
queue see_15.json > logs/see15.log 2>&1
test_eval see-lame-k16-s1 > logs/test_k16s1.log 2>&1
touch logs/chain14.done
