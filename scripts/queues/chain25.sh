#!/bin/bash
# 2026-12-04: after the K = 16 sequential baseline's test score (chain24), stop chain24 (its process
# group, given as $1) before its CoT run and take a diagnostic first: can the shipped discriminative
# model learn colour_of / shape_of (binding a named shape to its colour) when trained on them alone
# (600 steps, validation only)? Then the CoT run of chain24 (it resumes).
cd "$(dirname "$0")"
while [ ! -f ../../runs/see/see-sequential-k16/eval_test.json ]; do sleep 20; done
kill -TERM -- "-$1"
sleep 5
(cd ../.. && .venv/bin/python scripts/science_queue.py scripts/queues/see_23.json --runs runs/see \
  --only see-disc-binding-ft > logs/q_see-disc-binding-ft.log 2>&1)
./chain.sh see_22.json see-cot-ownret-swap15 &&
touch ../../logs/chain25.done
