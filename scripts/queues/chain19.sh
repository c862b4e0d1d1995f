#!/bin/bash
# The session chain of 2026-12-03 (second session), in the order it ran: K = 16 seed 2; direct-route
# dropout (queue see_17) on K = 16 seed 1, the seed whose reason tokens were not used for reasoning;
# then K = 16 seeds 3-4 and the discriminative model's seeds 3-4 as time allowed.
cd "$(dirname "$0")"
./chain.sh see_16.json see-lame-k16-s2 &&
./chain.sh see_17.json see-lame-k16-rd50-s1 &&
./chain.sh see_16.json see-lame-k16-s3 see-discriminative-s3 see-lame-k16-s4 see-discriminative-s4 &&
touch ../../logs/chain19.done
