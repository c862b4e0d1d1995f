#!/bin/bash
# 2026-12-06: queue see_41, the shipped CoT recipe (see-cot-ownret) on renamed scene words alone
# (its gold, own and swapped rationales renamed with the example): does a CoT whose language model has
# written every colour-shape pair keep its reasoning gain and lose the colour shortcut? Then the rest
# of chain42 (discriminative binding pipeline, seeds 2-4; a stopped run resumes).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_41.json see-cot-swo-rn || exit 1
scripts/queues/chain42.sh
touch logs/chain43.done
