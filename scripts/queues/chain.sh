#!/bin/bash
# One heavy job at a time: train and score on validation each named run of a queue
# (scripts/science_queue.py --only), then score it on the balanced test split and, for a LaME run,
# ablate its reason tokens on test (scripts/causal_use.py: zero, swap and, since 2026-12-06, mask). Every step is skipped when done or resumes.
# RESULTS=FILE scores into another validation results file (science_queue.py --results): a run whose
# score is already in the committed file is not trained again there, so a rerun on a fresh machine
# (runs/ gone) names its own file and its validation scores can be checked against the committed ones.
#     scripts/queues/chain.sh see_16.json see-lame-k16-s2 see-discriminative-s3
set -x
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
queue=$1
shift
for run in "$@"; do
  d=runs/see/$run
  $PY scripts/science_queue.py "scripts/queues/$queue" --runs runs/see --only "$run" \
    ${RESULTS:+--results "$RESULTS"} > "logs/q_$run.log" 2>&1 || exit 1
  test -f "$d/eval_test.json" || $PY -m lame_tools eval --model "$d/model" --split test --out "$d/eval_test.json" \
    --no-progress > "logs/test_$run.log" 2>&1 || exit 1
  case $run in
    *lame*) test -f "$d/causal_use_test.json" || $PY scripts/causal_use.py --model "$d/model" --split test \
      --how zero swap mask --reference "$d/eval_test.json" --out "$d/causal_use_test.json" > "logs/causal_$run.txt" 2>&1 ;;
  esac
done
