#!/bin/bash
# After chain22: the shipped CoT recipe with half of the colour_of / shape_of queries embedded after
# another scene's gold rationale (cot_swap_rationales=0.5), so that the embedding learns to take the
# image over a wrong rationale; validation, then test (held-out pairs are only in test: a diagnostic).
cd "$(dirname "$0")"
while [ ! -f ../../logs/chain22.done ]; do sleep 30; done
./chain.sh see_21.json see-cot-ownret-swap50 &&
touch ../../logs/chain23.done
