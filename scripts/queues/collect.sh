#!/bin/bash
# Copy each named run's scores out of runs/ (which does not outlive a machine) into assets/results:
# the balanced test eval -> seeds/eval_balanced_RUN.json, the validation_pairs eval ->
# validation_pairs/eval_RUN.json, the reason-token ablation -> see5/causal_use_test_RUN.json.
#     scripts/queues/collect.sh see-discriminative-swo see-disc-swo-wordlookup-ft
cd "$(dirname "$0")/../.."
R=assets/results
for run in "$@"; do
  d=runs/see/$run
  test -f "$d/eval_test.json" && cp "$d/eval_test.json" "$R/seeds/eval_balanced_$run.json"
  test -f "$d/eval_validation_pairs.json" && cp "$d/eval_validation_pairs.json" "$R/validation_pairs/eval_$run.json"
  test -f "$d/causal_use_test.json" && cp "$d/causal_use_test.json" "$R/see5/causal_use_test_$run.json"
done
exit 0
