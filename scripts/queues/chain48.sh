#!/bin/bash
# 2026-12-06: seeds 1-4 of the binding pipeline for LaME (K = 16), CoT and the sequential-latent
# baseline (queue see_45, presets see-<kind>-bind*), seed by seed, after chain47 (the discriminative
# seeds 2-4): the shipped models' comparisons over seeds (seed_compare.py --a/--b/--c). The first two
# phases are scored on validation only, the last as every run (test, causal use, validation_pairs).
# Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
test -f logs/chain47.done || scripts/queues/chain47.sh || exit 1
for s in 1 2 3 4; do
  for kind in lame-k16 cot sequential-k16; do
    scripts/queues/pipeline.sh see_45.json "see-$kind" "-s$s" || exit 1
  done
done
touch logs/chain48.done
