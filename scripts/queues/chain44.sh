#!/bin/bash
# 2026-12-06: chain43 stopped during its CoT test evaluation (resumed here per task). The renamed CoT
# (see_41) writes rationales whose object lists are 56% right on validation (colour_of / shape_of
# 60): writing "red square" is the same binding the one-pass models lacked. Queue see_42: the same
# CoT recipe continued from the binding pipeline's discriminative model (every weight: its language
# model already looks a named word's object up), 1,000 steps. Then chain42 (seeds 2-4).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_41.json see-cot-swo-rn || exit 1
scripts/queues/chain_pairs.sh see_42.json see-cot-swo-rn-from-disc || exit 1
scripts/queues/chain42.sh
touch logs/chain44.done
