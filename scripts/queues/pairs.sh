#!/bin/bash
# Score each named run's model on the validation_pairs split's colour_of and shape_of (every scene
# holds a held-out colour-shape pair; read the held_out group): runs/see/RUN/eval_validation_pairs.json
#     scripts/queues/pairs.sh see-discriminative-sw see-lame-k16-sw
cd "$(dirname "$0")/../.."
for run in "$@"; do
  d=runs/see/$run
  test -f "$d/eval_validation_pairs.json" || .venv/bin/python -m lame_tools eval --model "$d/model" --split validation_pairs \
    --tasks colour_of shape_of --out "$d/eval_validation_pairs.json" --no-progress > "logs/pairs_$run.log" 2>&1 || exit 1
done
