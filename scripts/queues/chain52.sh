#!/bin/bash
# 2026-12-06: the embedding read from the mean of [EMBED] and the reason tokens (embed_pool=mean,
# queue see_49): the binding pipeline's last phase, LaME K = 16, from the shipped LaME's look-up
# phase; scored as every run (test, causal use, pairs). chain48 (the seeds) is paused meanwhile.
# Resumable: run it again after a stop.
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain_pairs.sh see_49.json see-lame-k16-bind-pool || exit 1
touch logs/chain52.done
