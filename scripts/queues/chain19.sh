#!/bin/bash
# The session chain of 2026-12-03 (second session): K = 16 seeds 2-4 and the discriminative model's
# seeds 3-4, each scored on validation by the queue, on the balanced test split, and (for LaME) by
# ablating its reason tokens on test. One heavy job at a time; every step is skipped when done or resumes.
set -x
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
queue_one() { $PY scripts/science_queue.py scripts/queues/see_16.json --runs runs/see --only "$1" > "logs/q_$1.log" 2>&1; }
test_eval() {
  d=runs/see/$1
  test -f "$d/eval_test.json" || $PY -m lame_tools eval --model "$d/model" --split test --out "$d/eval_test.json" --no-progress > "logs/test_$1.log" 2>&1
}
causal() {
  d=runs/see/$1
  test -f "$d/causal_use_test.json" || $PY scripts/causal_use.py --model "$d/model" --split test --how zero swap \
    --reference "$d/eval_test.json" --out "$d/causal_use_test.json" > "logs/causal_$1.txt" 2>&1
}
for run in see-lame-k16-s2 see-lame-k16-s3 see-discriminative-s3 see-lame-k16-s4 see-discriminative-s4; do
  queue_one $run
  test_eval $run
  case $run in *lame*) causal $run ;; esac
done
touch logs/chain19.done
