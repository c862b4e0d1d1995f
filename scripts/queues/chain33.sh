#!/bin/bash
# the look-up loss read from the question's naming word at layer 0 (the plainest content match), against
# the same continuation of the shipped discriminative model without it; after chain32
cd "$(dirname "$0")/../.."
while kill -0 "$1" 2>/dev/null; do sleep 20; done
scripts/queues/chain.sh see_31.json see-disc-wordlookup-ft see-disc-binding-ft-model
