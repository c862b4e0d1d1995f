#!/bin/bash
# scene words + the word look-up loss, 600 steps on colour_of / shape_of (does the look-up learned on
# seen pairs reach held-out ones when a visual token carries its shape and colour words?), its control
# without the loss; then chain36's runs. Each run also scored on validation_pairs.
cd "$(dirname "$0")/../.."
for run in see-disc-sw-wordlookup-ft see-disc-sw-binding-ft; do
  scripts/queues/chain.sh see_35.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-discriminative-sw-s1 see-discriminative-sw-s2 see-lame-k16-sw see-discriminative-sw-s3 \
    see-discriminative-sw-s4 see-cot-ownret-sw see-sequential-k16-sw; do
  scripts/queues/chain.sh see_34.json $run && scripts/queues/pairs.sh $run || exit 1
done
