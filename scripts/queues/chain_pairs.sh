#!/bin/bash
# One heavy job at a time, per named run of a queue: train, score on validation and test, ablate a
# LaME run's reason tokens (chain.sh), then score the held-out pairs of validation_pairs (pairs.sh).
# RESULTS=FILE passes through to chain.sh.
#     scripts/queues/chain_pairs.sh see_40.json see-discriminative-swo-rn-s2 see-disc-swo-rn-s2-wordlookup-ft
cd "$(dirname "$0")/../.."
queue=$1
shift
for run in "$@"; do
  scripts/queues/chain.sh "$queue" "$run" && scripts/queues/pairs.sh "$run" || exit 1
done
