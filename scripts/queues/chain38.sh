#!/bin/bash
# 2026-12-05, a fresh machine (runs/ gone): the runs of queues see_33-see_35 again, into their own
# validation file (runs/see/rerun_validation.json; each must match its committed score), each also
# scored on the balanced test split and on validation_pairs:
#   1. scene words, seed 0 (the base of see_35's fine-tunes);
#   2. scene words + the word look-up loss, 600 steps on colour_of / shape_of, and its control: does
#      the look-up learned on seen pairs reach held-out ones when a visual token carries its words?
#   2b. (queue see_36, new) the same look-up in a 600-step continuation on every subtask, colour_of and
#      shape_of drawn 4 times as often (8 of 15 draws), and its control without the loss: does the
#      binding survive beside the other subtasks, and do they survive it?
#   3. scene words, discriminative seeds 1-4 (the five-seed test comparison against seeds 0-4);
#   4. scene words in the LaME K = 16, sequential K = 16 and CoT recipes (seed 0).
cd "$(dirname "$0")/../.."
export RESULTS=runs/see/rerun_validation.json
mkdir -p logs
scripts/queues/chain.sh see_33.json see-discriminative-sw && scripts/queues/pairs.sh see-discriminative-sw || exit 1
for run in see-disc-sw-wordlookup-ft see-disc-sw-binding-ft; do
  scripts/queues/chain.sh see_35.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-disc-sw-wl-mix-ft see-disc-sw-mix-ft; do
  scripts/queues/chain.sh see_36.json $run && scripts/queues/pairs.sh $run || exit 1
done
for run in see-discriminative-sw-s1 see-discriminative-sw-s2 see-discriminative-sw-s3 see-discriminative-sw-s4 \
    see-lame-k16-sw see-sequential-k16-sw see-cot-ownret-sw; do
  scripts/queues/chain.sh see_34.json $run && scripts/queues/pairs.sh $run || exit 1
done
touch logs/chain38.done
