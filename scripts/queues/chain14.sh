#!/bin/bash
# Session chain of 2026-12-03: one heavy job at a time; every step is resumable or skipped when done.
set -x
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
$PY scripts/science_queue.py scripts/queues/see_14_rerun.json --runs runs/see --results logs/rerun_validation.json > logs/see14r.log 2>&1
$PY scripts/science_queue.py scripts/queues/see_14.json --runs runs/see > logs/see14.log 2>&1
test -f runs/see/see-cot-ownret/eval_test.json || $PY -m lame_tools eval --model runs/see/see-cot-ownret/model --split test --out runs/see/see-cot-ownret/eval_test.json --no-progress > logs/see14test.log 2>&1
$PY scripts/science_queue.py scripts/queues/see_14_rerun_k16.json --runs runs/see --results logs/rerun_validation.json > logs/see14k.log 2>&1
$PY scripts/science_queue.py scripts/queues/see_14_s2.json --runs runs/see > logs/see14s2.log 2>&1
touch logs/chain14.done
