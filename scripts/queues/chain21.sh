#!/bin/bash
# The session chain of 2026-12-03 (third session), replacing chain20 after its first run had started:
# explicit CoT seeds 3-4 (a five-seed CoT gain beside K = 16's five seeds); the discriminative model
# at LaME K = 16's training wall time (queue see_19: stage 2 of 1,150 steps, from the measured
# throughput ratio 41.4 / 36.0 samples/s, assets/results/train_throughput_see.json); LaME K = 8
# seeds 3-4.
cd "$(dirname "$0")"
./chain.sh see_18.json see-cot-ownret-s3 see-cot-ownret-s4 &&
./chain.sh see_19.json see-discriminative-ew see-discriminative-ew-s1 see-discriminative-ew-s2 &&
./chain.sh see_18.json see-lame-s3 see-lame-s4 &&
touch ../../logs/chain21.done
