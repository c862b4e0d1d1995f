#!/bin/bash
# 2026-12-06: the rationale self-distilled into one pass (self_distill, queue see_46): the binding
# pipeline's last phase with the CODI-style distance, LaME K = 16,
# from the shipped LaME's look-up phase; scored as every run (test, causal use, pairs).
# chain48 (the seeds) is paused meanwhile. Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_46.json see-lame-k16-bind-distill || exit 1
touch logs/chain49.done
