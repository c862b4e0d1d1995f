#!/bin/bash
# The binding pipeline of one model, one heavy job at a time: train its first two phases
# (STEM-bind, STEM-bind-lookup, each with SUFFIX), then the last (STEM-bind-mixed SUFFIX) through
# chain_pairs.sh (validation, test, causal use for a LaME run, held-out pairs). Every step skips what
# is done and resumes what was stopped. RESULTS=FILE passes through to science_queue.py; FIRST_ONLY=1
# stops after the first two phases (another queue's last phase starts from them).
#     scripts/queues/pipeline.sh see_45.json see-lame-k16 -s3
#     FIRST_ONLY=1 scripts/queues/pipeline.sh see_77.json see-deep-disc-lr0 -s2
cd "$(dirname "$0")/../.."
queue=$1 stem=$2 suffix=${3:-}
for phase in bind bind-lookup; do
  run=$stem-$phase$suffix
  .venv/bin/python scripts/science_queue.py "scripts/queues/$queue" --runs runs/see --only "$run" \
    ${RESULTS:+--results "$RESULTS"} > "logs/q_$run.log" 2>&1 || exit 1
done
test -n "$FIRST_ONLY" && exit 0
scripts/queues/chain_pairs.sh "$queue" "$stem-bind-mixed$suffix"
